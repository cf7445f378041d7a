import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMTestSupport
@testable import PRMPolicy

/// Supervised fine-tuning on real lengthpref dialogues with a tiny policy.
final class SFTTests: XCTestCase {
    /// The first `count` rows of lengthpref's dev file as (prompt, reply) dialogues, both replies.
    static func dialogues(_ count: Int) throws -> [(prompt: String, reply: String)] {
        let lines = try String(contentsOf: TestSupport.lengthprefDirectory.appendingPathComponent("dev.jsonl"), encoding: .utf8)
            .split(separator: "\n").prefix(count)
        return try lines.flatMap { line -> [(prompt: String, reply: String)] in
            let row = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
            let prompt = try XCTUnwrap(row["prompt"])
            return [(prompt, try XCTUnwrap(row["chosen"])), (prompt, try XCTUnwrap(row["rejected"]))]
        }
    }

    func settings() -> SFTSettings {
        var s = TinyPolicies.settings(embedding: 16, layers: 1, heads: 2, positions: 96)
        s.epochs = 3
        s.batchSize = 4
        s.learningRate = 1e-2
        s.dropout = 0.1
        s.logEvery = 2
        return s
    }

    func testSequencesKeepTheEndOfLongDialoguesAndScoreOnlyReplies() throws {
        let (policy, _) = try TinyPolicies.policy(settings: settings())
        let dialogues = try Self.dialogues(12)
        let sequences = SFTTrainer.sequences(dialogues + dialogues, policy: policy)
        XCTAssertEqual(sequences.count, Set(dialogues.map { $0.prompt + "\u{0}" + $0.reply }).count, "duplicates are kept once")
        for (sequence, dialogue) in zip(sequences, dialogues) {
            XCTAssertLessThanOrEqual(sequence.tokens.count + policy.userRows, policy.maxPositions)
            let whole = policy.format.encodeDialogue(prompt: dialogue.prompt, reply: dialogue.reply)
            XCTAssertEqual(sequence.tokens, Array(whole.ids.suffix(sequence.tokens.count)))
            // The reply and its end are always scored (all but the first token when the reply alone
            // outgrows the window: the first token has no row before it to be predicted from).
            let reply = min(policy.format.encodeReply(dialogue.reply).count + 1, sequence.tokens.count - 1)
            XCTAssertEqual(Array(sequence.scored.suffix(reply)), Array((sequence.tokens.count - reply)..<sequence.tokens.count))
            XCTAssertTrue(sequence.scored.allSatisfy { ![policy.format.human, policy.format.assistant].contains(sequence.tokens[$0]) })
        }
    }

    /// Training lowers the loss on its data well below the unigram baseline's, and the log has
    /// the validation perplexity at each epoch end.
    func testLearnsItsDialogues() throws {
        let (policy, _) = try TinyPolicies.policy(settings: settings())
        let train = SFTTrainer.sequences(try Self.dialogues(8), policy: policy)
        var s = settings()
        s.epochs = 8
        let trainer = try SFTTrainer(policy: policy, settings: s, train: train, dev: train)
        let before = trainer.evaluate(train)
        try trainer.run()
        let after = trainer.evaluate(train)
        let unigram = UnigramBaseline(train, vocabularySize: policy.vocabularySize).perplexity(train)
        XCTAssertLessThan(after, before - 2)
        XCTAssertLessThan(Foundation.exp(after), unigram / 2, "a model of its own training data must beat context-free frequencies")
        XCTAssertEqual(trainer.log.compactMap(\.devPerplexity).count, s.epochs)
        XCTAssertEqual(trainer.log.last?.devPerplexity ?? 0, Foundation.exp(after), accuracy: 1e-6 * Foundation.exp(after))
    }

    /// Interrupted after an epoch and resumed from the folder, the run ends bit-identical to an
    /// uninterrupted one (data order, dropout masks and AdamW state all restored).
    func testResumeEqualsAnUninterruptedRun() throws {
        let dialogues = try Self.dialogues(10)
        func fresh() throws -> SFTTrainer {
            let (policy, _) = try TinyPolicies.policy(settings: settings())
            return try SFTTrainer(policy: policy, settings: settings(), train: SFTTrainer.sequences(dialogues, policy: policy))
        }
        let whole = try fresh()
        try whole.run()

        let folder = try TestSupport.temporaryDirectory("sft-resume")
        defer { try? FileManager.default.removeItem(at: folder) }
        let first = try fresh()
        try first.run(untilStep: first.stepsPerEpoch) { _ in try SFTState.save(first, dataFile: nil, to: folder) }
        let state = try SFTState.load(from: folder)
        XCTAssertEqual(state.step, first.stepsPerEpoch)
        let (policy, _, _) = try PolicyCheckpoint.load(folder)
        let resumed = try SFTTrainer(policy: policy, settings: state.settings, train: SFTTrainer.sequences(dialogues, policy: policy))
        try state.restore(into: resumed, from: folder)
        try resumed.run()
        XCTAssertEqual(resumed.optimizer.step, whole.optimizer.step)
        XCTAssertEqual(resumed.policy.parameters.values.array, whole.policy.parameters.values.array)

        // Other data is refused, naming the folder.
        let other = try SFTTrainer(policy: policy, settings: state.settings, train: SFTTrainer.sequences(Array(dialogues.dropFirst()), policy: policy))
        XCTAssertThrowsError(try state.restore(into: other, from: folder)) { error in
            XCTAssertTrue(String(describing: error).contains("differ from the run being resumed"), "\(error)")
        }
    }

    /// A batch whose loss is NaN is skipped and counted and the run goes on; the epoch end then
    /// refuses to save the weights that still hold the NaN. The poison: the position rows only
    /// the one long dialogue reaches.
    func testPoisonedBatchIsSkippedAndNoNonFiniteCheckpointIsWritten() throws {
        var s = settings()
        s.epochs = 1
        s.dropout = 0
        let (policy, _) = try TinyPolicies.policy(settings: s)
        let short = (0..<11).map { (prompt: "Human: hi \($0)\n\nAssistant:", reply: "Hello \($0).") }
        let long = (prompt: "Human: " + String(repeating: "tell me more, ", count: 12) + "\n\nAssistant:", reply: "Sure.")
        let train = SFTTrainer.sequences(short + [long], policy: policy)
        let shortest = train.map(\.tokens.count).sorted()
        let reach = policy.userRows + shortest[shortest.count - 2]
        XCTAssertLessThan(reach, policy.userRows + shortest.last!, "one dialogue reaches further than the rest")
        let wpe = try XCTUnwrap(policy.parameters.handle(named: "wpe.weight"))
        let C = policy.backbone.hiddenSize
        for i in (reach * C)..<(policy.maxPositions * C) { policy.parameters.value(wpe)[i] = .nan }

        let trainer = try SFTTrainer(policy: policy, settings: s, train: train)
        let folder = try TestSupport.temporaryDirectory("sft-poisoned")
        defer { try? FileManager.default.removeItem(at: folder) }
        XCTAssertThrowsError(try trainer.run { _ in try SFTState.save(trainer, dataFile: nil, to: folder) }) { error in
            XCTAssertTrue("\(error)".contains("not writing a checkpoint with non-finite weights"), "\(error)")
        }
        XCTAssertEqual(trainer.skippedUpdates, 1, "the one batch holding the long dialogue")
        XCTAssertEqual(trainer.optimizer.step, trainer.totalSteps, "the other steps ran")
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("model.safetensors").path))
    }
}
