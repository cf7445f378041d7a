import Foundation
import XCTest
import PRMCore
import PRMTestSupport

/// AdamW's moments saved beside a checkpoint come back exactly, and files from different steps
/// are refused through the caller's error.
final class OptimizerStateTests: XCTestCase {
    struct Refused: Error { var problem: String }
    struct State: RunState, Equatable {
        var step: Int
        var data = DataFingerprint([[Int32(1)]]) { [$0] }

        static let command = "test"
        static let dataName = (what: "data", unit: "items")
        static func error(_ problem: String) -> any Error { Refused(problem: problem) }
    }

    func adam(seed: UInt64) -> AdamW {
        var layout = Parameters.Layout()
        _ = layout.add("w", [6])
        let parameters = Parameters(layout)
        var rng = RandomSource(seed: seed)
        for i in 0..<6 { parameters.values[i] = rng.nextNormal() }
        return AdamW(parameters: parameters, groups: [.backbone: .init(schedule: .constant(0.1))])
    }

    func testSaveThenRestoreGivesTheSameMoments() throws {
        let folder = try TestSupport.temporaryDirectory("optimizer-state")
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let saved = adam(seed: 1)
        for i in 0..<6 { saved.parameters.grads[i] = Float(i) - 2.5 }
        saved.update()
        let modelFile = folder.appendingPathComponent("model.safetensors")
        func writeModel(step: Int) throws {
            try SafetensorsWriter.write([.init(name: "w", shape: [6], data: saved.parameters.values.data)],
                                        metadata: ["step": String(step)], to: modelFile)
        }
        try writeModel(step: saved.step)
        try OptimizerState.save(saved, state: State(step: saved.step), to: folder)
        let state = try JSONDecoder().decode(State.self, from: Data(contentsOf: folder.appendingPathComponent(OptimizerState.stateFile)))
        XCTAssertEqual(state, State(step: 1))

        let restored = adam(seed: 2)
        try state.restore(restored, data: state.data, from: folder)
        XCTAssertEqual(restored.step, saved.step)
        XCTAssertEqual(restored.m.array, saved.m.array)
        XCTAssertEqual(restored.v.array, saved.v.array)

        try writeModel(step: 7)
        XCTAssertThrowsError(try state.restore(adam(seed: 3), data: state.data, from: folder)) { error in
            let problem = (error as? Refused)?.problem ?? "\(error)"
            XCTAssertTrue(problem.contains("model (step 7), optimizer (step 1) and trainer_state.json (step 1) disagree"), problem)
        }
    }
}
