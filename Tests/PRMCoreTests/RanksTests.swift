import XCTest
@testable import PRMCore

/// The sharding of a step's batch among data-parallel ranks (the collectives themselves run in
/// real `mpirun` jobs: PRMCLITests' MPITrainTests).
final class RanksTests: XCTestCase {
    /// For every batch size and rank count, the shards are contiguous, in rank order, cover the
    /// batch exactly once, differ in size by at most one, and say where they start and how large
    /// the global batch is.
    func testShardsPartitionTheBatchInOrder() {
        for size in 1...5 {
            for count in 0...17 {
                let batch = (0..<count).map { 100 + 7 * $0 }
                let shards = (0..<size).map { Ranks(rank: $0, size: size).shard(batch) }
                XCTAssertEqual(shards.flatMap(\.indices), batch, "\(count) examples on \(size) ranks")
                XCTAssertLessThanOrEqual((shards.map(\.indices.count).max() ?? 0) - (shards.map(\.indices.count).min() ?? 0), 1)
                var offset = 0
                for shard in shards {
                    XCTAssertEqual(shard.offset, offset)
                    XCTAssertEqual(shard.total, count)
                    offset += shard.indices.count
                }
            }
        }
    }

    /// The overlapped sum's plan: the reported segments in their order, then the gaps they leave
    /// in ascending order, every element once.
    func testTheOverlappedPlanIsTheSegmentsThenTheirGaps() {
        XCTAssertEqual(OverlappedSum.plan([20..<30, 10..<20], count: 40), [20..<30, 10..<20, 0..<10, 30..<40])
        XCTAssertEqual(OverlappedSum.plan([], count: 7), [0..<7])
        XCTAssertEqual(OverlappedSum.plan([0..<7], count: 7), [0..<7])
        let plan = OverlappedSum.plan([50..<60, 30..<50, 5..<9], count: 64)
        XCTAssertEqual(plan.flatMap { Array($0) }.sorted(), Array(0..<64))
    }

    /// A single process's gather is its own rows.
    func testASingleProcessGathersItsOwnRows() throws {
        let shard = Ranks.single.shard([4, 5, 6])
        XCTAssertEqual(try Ranks.single.gather([1, 2, 3, 4, 5, 6], of: shard, width: 2), [1, 2, 3, 4, 5, 6])
    }

    /// A process on its own is rank 0 of 1 and leads; its collectives change nothing.
    func testASingleProcessIsItsOwnLeaderAndItsSumsAreItsValues() throws {
        let single = Ranks.single
        XCTAssertEqual(single.rank, 0)
        XCTAssertEqual(single.size, 1)
        XCTAssertTrue(single.isLeader)
        XCTAssertFalse(single.isDistributed)
        var values = [1.5, -2, 3]
        try single.sum(&values)
        XCTAssertEqual(values, [1.5, -2, 3])
        let tensor = Tensor(shape: [3])
        tensor.data[1] = 4
        try single.sum(tensor)
        XCTAssertEqual(tensor.data[1], 4)
        XCTAssertEqual(single.reduceSeconds, 0)
    }
}
