import Foundation
import XCTest
import PRMCore
import PRMTestSupport
@testable import PRMModel

/// The MiniLM encoder against an independent numpy implementation (Tests/Reference/bert_reference.py)
/// run on the same safetensors file, through the training forward and the inference pass, on every
/// backend; and padding/packing invariance.
final class BertReferenceTests: XCTestCase {
    static let sentences = [
        "A man is eating food.",
        "Human: How can I open a locked door?\n\nAssistant: You'd be able to open the door if you had a key.",
        "The new movie is awesome",
        "Café déjà vu — 東京",
        "ok",
        "Well, they're like lockpicks that you can use to open doors if you don't have the key, but they're sort of difficult to use. They're made out of really hard metal, like steel, so they are heavy and you have to make a lot of noise to use them.",
    ]

    func testMiniLMMatchesNumpyReference() throws {
        let model = try Backbones.load(folder: TestSupport.miniLMDirectory())
        let embedder = SentenceEmbedder(model: model)
        let ids = embedder.tokenize(Self.sentences)
        let reference = try runReference(model: model.folder, ids: ids)

        let C = model.backbone.hiddenSize
        let batch = PackedBatch(lengths: ids.map(\.count))
        let embeddings = Tensor(shape: [batch.tokens, C])
        model.backbone.embedTokens(out: embeddings.data, ids: ids.flatMap { $0 }, parameters: model.parameters)
        try TestSupport.eachBackend { backend in
            // The training forward and the inference pass, each against numpy.
            for (path, hidden) in [("forward", model.backbone.forward(embeddings: embeddings.data, batch: batch, training: false)),
                                   ("infer", model.backbone.infer(embeddings: embeddings.data, batch: batch))] {
                var worstHidden: Float = 0
                for b in 0..<batch.count {
                    let expected = try reference.tensor("hidden.\(b)", expectedShape: [ids[b].count, C])
                    for i in 0..<expected.count {
                        worstHidden = max(worstHidden, abs(hidden[batch.starts[b] * C + i] - expected[i]))
                    }
                }
                XCTAssertLessThan(worstHidden, 1e-4, "\(backend) \(path): largest hidden-state difference from numpy")
            }

            let pooled = embedder.embed(tokenized: ids)
            var worstPooled: Float = 0
            for b in 0..<batch.count {
                let expected = try reference.tensor("pooled.\(b)", expectedShape: [C])
                for c in 0..<C { worstPooled = max(worstPooled, abs(pooled[b][c] - expected[c])) }
            }
            XCTAssertLessThan(worstPooled, 1e-4, "\(backend): largest pooled-embedding difference from numpy")
        }
    }

    func testBatchingDoesNotChangeAnySequence() throws {
        let model = try Backbones.load(folder: TestSupport.miniLMDirectory())
        let embedder = SentenceEmbedder(model: model)
        let ids = embedder.tokenize(Self.sentences)
        TestSupport.eachBackend { backend in
            let together = embedder.encode(ids)
            for (b, sequence) in ids.enumerated() {
                let alone = embedder.encode([sequence])[0]
                let difference = zip(alone, together[b]).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThan(difference, 1e-5, "\(backend): sequence \(b) changes when batched")
            }
        }
    }

    private func runReference(model: URL, ids: [[Int32]]) throws -> SafetensorsFile {
        let directory = try TestSupport.temporaryDirectory()
        let input = directory.appendingPathComponent("ids.json"), output = directory.appendingPathComponent("out.safetensors")
        try JSONSerialization.data(withJSONObject: ["ids": ids.map { $0.map(Int.init) }]).write(to: input)
        try TestSupport.runPython(TestSupport.referenceScript("bert_reference.py"),
                                  ["--model", model.path, "--input", input.path, "--output", output.path])
        return try SafetensorsFile(contentsOf: output)
    }
}
