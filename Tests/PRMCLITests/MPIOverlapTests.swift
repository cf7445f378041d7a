import Foundation
import XCTest

/// `prm train --allreduce overlapped` under `mpirun -np 2` (the helpers are MPITrainTests').
extension MPITrainTests {
    /// The gradient segments summed while the backward pass goes on give the single process's
    /// weights and accuracy as the one allreduce a step does: the tiny BERT's one layer starts
    /// before the backward pass ends, the rest (embeddings; user vectors and head) after it.
    func testOverlappedAllreduceTrainsTheSingleProcessWeights() throws {
        let (folder, common) = try tinyRun()
        let single = folder.appendingPathComponent("single"), overlapped = folder.appendingPathComponent("overlapped")
        try runToEnd(common + ["--epochs", "2", "--out", single.path])
        let job = try runToEnd(common + ["--epochs", "2", "--out", overlapped.path, "--allreduce", "overlapped"], ranks: 2)
        XCTAssertTrue(job.contains("gradient allreduce overlapped with the backward pass: 1 of 3 segments started before it ended"), job)
        try assertSameWeights(overlapped, single)
        let a = try log(single), b = try log(overlapped)
        XCTAssertEqual(b.map(\.step), a.map(\.step))
        XCTAssertEqual(b.compactMap(\.devAccuracy), a.compactMap(\.devAccuracy))
        for (x, y) in zip(a, b) { XCTAssertEqual(x.loss, y.loss, accuracy: 1e-4 * max(1, abs(x.loss))) }
        XCTAssertNotNil(b.last?.allreduceSeconds)
    }
}
