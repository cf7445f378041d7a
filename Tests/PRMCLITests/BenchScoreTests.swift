import Foundation
import XCTest
import PRMModel
import PRMTestSupport
@testable import PRMBench

/// What `prm bench score` runs (its timings are benchmarks, not tests): the cases' inputs from the
/// real data and how they are batched, and the token-id file a peer reads.
final class BenchScoreTests: XCTestCase {
    func testCasesAreBuiltFromTheRealData() throws {
        let data = TestSupport.lengthprefDirectory.appendingPathComponent("train.jsonl")
        let replies = try BenchScore.distinctReplies(data: data, count: BenchScore.replies)
        XCTAssertEqual(replies.count, 512)
        XCTAssertEqual(Set(replies).count, 512, "replies must be distinct")
        // File order: the first row's chosen reply, then its rejected one.
        let firstRow = try XCTUnwrap(JSONSerialization.jsonObject(
            with: Data(try XCTUnwrap(String(contentsOf: data, encoding: .utf8).split(separator: "\n").first).utf8)) as? [String: Any])
        XCTAssertEqual(replies[0], firstRow["chosen"] as? String)
        XCTAssertEqual(replies[1], firstRow["rejected"] as? String)
        XCTAssertThrowsError(try BenchScore.distinctReplies(data: data, count: 1_000_000))
        // The ranking cases' prompt and user are the first row's.
        let (prompt, user) = try BenchScore.firstPrompt(data: data)
        XCTAssertEqual(prompt, firstRow["prompt"] as? String)
        XCTAssertEqual(user, firstRow["user_id"] as? String)

        let embedder = SentenceEmbedder(model: try Backbones.load(folder: TestSupport.miniLMDirectory()),
                                        maxTokens: BenchScore.maxTokens, tokensPerBatch: BenchScore.tokenBudget)
        for (count, length) in [(1, 128), (32, 128), (64, 64)] {
            let sequences = BenchScore.uniform(replies, count: count, length: length, embedder: embedder)
            XCTAssertEqual(sequences.count, count)
            for sequence in sequences {
                XCTAssertEqual(sequence.count, length)
                XCTAssertEqual(sequence.first, 101, "[CLS] first")
                XCTAssertEqual(sequence.last, 102, "[SEP] last")
                XCTAssertFalse(sequence.dropFirst().dropLast().contains(102), "a repeated reply must not carry separators")
            }
        }
    }

    /// Both batchings cover every sequence exactly once within the token budget; arrival keeps order.
    func testBatchingsCoverEverySequenceWithinTheBudget() throws {
        let embedder = SentenceEmbedder(model: try Backbones.load(folder: TestSupport.miniLMDirectory()), maxTokens: 128, tokensPerBatch: 300)
        let sequences = (0..<40).map { i in [Int32](repeating: Int32(1000 + i), count: 3 + (i * 37) % 120) }
        for batching in [BenchScore.Case.Batching.arrival, .sorted] {
            let groups = BenchScore.batches(BenchScore.Case(name: "x", sequences: sequences, batching: batching), embedder: embedder)
            XCTAssertTrue(groups.allSatisfy { $0.reduce(0) { $0 + $1.count } <= 300 }, "\(batching): a batch over the budget")
            let flattened = groups.flatMap { $0 }
            XCTAssertEqual(flattened.count, sequences.count)
            XCTAssertEqual(Set(flattened.map { $0[0] }), Set(sequences.map { $0[0] }), "\(batching)")
            if batching == .arrival { XCTAssertEqual(flattened, sequences, "arrival order must be kept") }
        }
    }

    func testDumpedInputsAreTheCasesTokenIds() throws {
        let url = try scratchFolder().appendingPathComponent("inputs.json")
        let cases = [BenchScore.Case(name: "a", sequences: [[101, 7, 102], [101, 102]], batching: .sorted),
                     BenchScore.Case(name: "b", sequences: [[101, 9, 9, 102]], batching: .arrival)]
        try BenchScore.writeInputs(cases, to: url)
        let decoded = try JSONDecoder().decode([String: [[Int32]]].self, from: Data(contentsOf: url))
        XCTAssertEqual(decoded, ["a": [[101, 7, 102], [101, 102]], "b": [[101, 9, 9, 102]]])
    }
}
