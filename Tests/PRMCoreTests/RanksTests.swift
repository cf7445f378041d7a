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
