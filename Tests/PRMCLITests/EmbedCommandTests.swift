import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMTestSupport
@testable import PRMCLI

/// One line of `prm embed`'s output.
struct EmbeddingLine: Decodable {
    let text: String
    let embedding: [Double]
}

func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

/// `prm embed` with the real all-MiniLM-L6-v2 weights, driven through `CLI.run`.
final class EmbedCommandTests: XCTestCase {
    func testTextArgumentsGiveOneUnitVectorPerTextInOrder() throws {
        let model = try TestSupport.miniLMDirectory().path
        let texts = ["A man is eating food.", "A man is eating pasta.", "The girl is carrying a baby."]
        let result = PRM.run(["embed", "--model", model] + texts)
        assertSucceeded(result)
        let lines = try JSONL.decodeLines(EmbeddingLine.self, result)
        XCTAssertEqual(lines.map(\.text), texts)
        for line in lines {
            XCTAssertEqual(line.embedding.count, 384, line.text)
            XCTAssertEqual(dot(line.embedding, line.embedding), 1, accuracy: 1e-5, "norm² of '\(line.text)'")
            XCTAssertTrue(line.embedding.allSatisfy(\.isFinite), line.text)
        }
        guard lines.count == 3 else { return }
        // The real pretrained model puts the two eating sentences closer than eating and carrying.
        let food = lines[0].embedding, pasta = lines[1].embedding, baby = lines[2].embedding
        XCTAssertGreaterThan(dot(food, pasta), dot(food, baby) + 0.2)
    }

    /// Texts of very different lengths with --batch-tokens small enough for several packed
    /// batches: the embedder sorts by length, so output order must be restored, and each text's
    /// vector must equal the one it gets when embedded on its own.
    func testJSONLInputKeepsOrderAcrossLengthSortedBatches() throws {
        let modelFolder = try TestSupport.miniLMDirectory()
        let folder = try scratchFolder()
        let long = Array(repeating: "The committee reviewed every proposal in detail before the vote.", count: 14).joined(separator: " ")
        let medium = Array(repeating: "She walked the dog along the river at dawn.", count: 13).joined(separator: " ")
        let fairlyLong = Array(repeating: "Rain fell on the old tin roof all night.", count: 15).joined(separator: " ")
        let texts = ["Hi.", long, "Cats sleep a lot.", medium, "ok", fairlyLong, "A short sentence about tea."]
        // Objects with a custom field, and bare JSON strings, mixed; a blank line is skipped.
        let values: [Any] = texts.enumerated().map { index, text in
            index.isMultiple(of: 2) ? ["sentence": text, "id": index] as [String: Any] as Any : text as Any
        }
        let input = folder.appendingPathComponent("texts.jsonl")
        try JSONL.write(values, to: input)
        try (Data(contentsOf: input) + Data("\n".utf8)).write(to: input)

        // The batching this test relies on: several batches, and an order different from the input.
        let embedder = SentenceEmbedder(model: try Backbones.load(folder: modelFolder), maxTokens: 256, tokensPerBatch: 256)
        let groups = PackedBatch.lengthGroups(embedder.tokenize(texts).map(\.count), tokensPerBatch: embedder.tokensPerBatch)
        XCTAssertGreaterThanOrEqual(groups.count, 3, "texts should need several packed batches: \(groups)")
        XCTAssertNotEqual(groups.flatMap { $0 }, Array(texts.indices), "length sorting should reorder the texts")

        let result = PRM.run("embed", "--model", modelFolder.path, "--input", input.path, "--field", "sentence",
                             "--max-tokens", "256", "--batch-tokens", "256")
        assertSucceeded(result)
        let lines = try JSONL.decodeLines(EmbeddingLine.self, result)
        XCTAssertEqual(lines.map(\.text), texts, "output must follow input order")

        for (text, line) in zip(texts, lines) {
            let alone = PRM.run("embed", "--model", modelFolder.path, "--max-tokens", "256", text)
            assertSucceeded(alone)
            let reference = try XCTUnwrap(JSONL.decodeLines(EmbeddingLine.self, alone).first)
            XCTAssertEqual(line.embedding.count, 384)
            XCTAssertEqual(dot(line.embedding, line.embedding), 1, accuracy: 1e-5, "norm² of '\(text.prefix(20))'")
            let worst = zip(line.embedding, reference.embedding).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThan(worst, 1e-5, "'\(text.prefix(30))…' batched vs alone differ by \(worst)")
        }
    }

    /// More texts than one input window: order is kept across windows and each vector equals the
    /// one its text gets alone.
    func testInputLongerThanOneWindowKeepsOrder() throws {
        let model = try TestSupport.miniLMDirectory()
        let folder = try scratchFolder()
        let words = ["tea", "rain on the roof", "a long walk by the river at dawn with the dog", "ok"]
        let texts = (0..<(EmbedCommand.window + 300)).map { "\($0): \(words[$0 % words.count])" }
        let input = folder.appendingPathComponent("many.jsonl")
        try JSONL.write(texts.map { ["text": $0] }, to: input)
        let result = PRM.run("embed", "--model", model.path, "--input", input.path, "--max-tokens", "32")
        assertSucceeded(result)
        let lines = try JSONL.decodeLines(EmbeddingLine.self, result)
        XCTAssertEqual(lines.map(\.text), texts, "output must follow input order across windows")
        for index in [0, 1, EmbedCommand.window - 1, EmbedCommand.window, texts.count - 1] {
            let alone = try XCTUnwrap(JSONL.decodeLines(EmbeddingLine.self, PRM.run("embed", "--model", model.path, "--max-tokens", "32", texts[index])).first)
            let worst = zip(lines[index].embedding, alone.embedding).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThan(worst, 1e-5, "text \(index)")
        }
    }

    /// `prm --backend B embed` on each backend gives the same vectors.
    func testBothBackendsGiveTheSameEmbeddings() throws {
        let model = try TestSupport.miniLMDirectory().path
        let texts = ["A man is eating food.", "Human: How can I open a locked door?\n\nAssistant: With a key.", "ok"]
        let runs = try Compute.Backend.allCases.map { backend in
            let result = PRM.run(["--backend", backend.rawValue, "embed", "--model", model] + texts)
            assertSucceeded(result)
            return try JSONL.decodeLines(EmbeddingLine.self, result)
        }
        XCTAssertEqual(runs.count, 2)
        for (a, b) in zip(runs[0], runs[1]) {
            XCTAssertEqual(a.text, b.text)
            let worst = zip(a.embedding, b.embedding).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThan(worst, 1e-5, a.text)
        }
    }

    func testInvalidJSONLineNamesFileAndLine() throws {
        let folder = try scratchFolder()
        let input = folder.appendingPathComponent("broken.jsonl")
        try Data("{\"text\": \"fine\"}\n\"also fine\"\n{\"text\": \"unterminated\"\n{\"text\": \"never read\"}\n".utf8).write(to: input)
        let result = PRM.run("embed", "--model", try TestSupport.miniLMDirectory().path, "--input", input.path)
        assertFailed(result, command: "embed", mentioning: ["\(input.path):3:", "invalid JSON"])
    }

    /// `--input` goes through the same line splitter as training data: a byte-order mark, CRLF line
    /// ends and blank lines are not texts, and an error still names the file's own line number.
    func testInputWithByteOrderMarkCRLFAndBlankLines() throws {
        let model = try TestSupport.miniLMDirectory().path
        let folder = try scratchFolder()
        let input = folder.appendingPathComponent("windows.jsonl")
        try Data([0xEF, 0xBB, 0xBF] + Array("{\"text\": \"one\"}\r\n\r\n  \r\n\"two\"\r\n".utf8)).write(to: input)
        let result = PRM.run("embed", "--model", model, "--input", input.path, "--max-tokens", "16")
        assertSucceeded(result)
        XCTAssertEqual(try JSONL.decodeLines(EmbeddingLine.self, result).map(\.text), ["one", "two"])
        try Data([0xEF, 0xBB, 0xBF] + Array("\"one\"\r\n\r\n{\"text\": 3}\r\n".utf8)).write(to: input)
        assertFailed(PRM.run("embed", "--model", model, "--input", input.path), command: "embed", mentioning: ["\(input.path):3:", "'text'"])
    }

    func testMissingFieldNamesFileLineAndField() throws {
        let folder = try scratchFolder()
        let input = folder.appendingPathComponent("fields.jsonl")
        try JSONL.write([["sentence": "one"], ["text": "two"]], to: input)
        let result = PRM.run("embed", "--model", try TestSupport.miniLMDirectory().path, "--input", input.path, "--field", "sentence")
        assertFailed(result, command: "embed", mentioning: ["\(input.path):2:", "'sentence'"])
    }

    func testInvalidUTF8IsAClearError() throws {
        let folder = try scratchFolder()
        let input = folder.appendingPathComponent("latin1.jsonl")
        // Line 2 is "café" in Latin-1: 0xE9 is not valid UTF-8.
        var bytes = Data("\"fine\"\n{\"text\": \"caf".utf8)
        bytes.append(0xE9)
        bytes += Data("\"}\n".utf8)
        try bytes.write(to: input)
        let result = PRM.run("embed", "--model", try TestSupport.miniLMDirectory().path, "--input", input.path)
        assertFailed(result, command: "embed", mentioning: ["\(input.path):2:", "invalid UTF-8"])
    }

    func testMissingInputFileIsNamed() throws {
        let missing = try scratchFolder().appendingPathComponent("nope.jsonl").path
        let result = PRM.run("embed", "--model", try TestSupport.miniLMDirectory().path, "--input", missing)
        assertFailed(result, command: "embed", mentioning: [missing, "not found"])
    }

    /// MiniLM adds [CLS] and [SEP]: fewer than 3 tokens leaves no room for text (this used to
    /// trap in the truncation, killing the process).
    func testMaxTokensWithoutRoomForTextIsAUsageError() throws {
        let model = try TestSupport.miniLMDirectory().path
        for value in ["2", "0", "-5"] {
            let result = PRM.run("embed", "--model", model, "--max-tokens", value, "a text")
            assertUsageError(result, command: "embed", message: "--max-tokens must be at least 3 (the model adds 2 special tokens), got \(value)")
        }
        let smallest = PRM.run("embed", "--model", model, "--max-tokens", "3", "a text")
        assertSucceeded(smallest)
        XCTAssertEqual(try JSONL.decodeLines(EmbeddingLine.self, smallest).first?.embedding.count, 384)
    }

    func testTextsAndInputTogetherIsAUsageError() throws {
        let result = PRM.run("embed", "--input", "texts.jsonl", "a text")
        assertUsageError(result, command: "embed", message: "give texts as arguments or with --input, not both")
    }
}
