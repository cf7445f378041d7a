import Foundation
import XCTest
import PRMCore
import PRMTestSupport
@testable import PRMModel

/// The GPT-2-style decoder against an independent numpy implementation
/// (Tests/Reference/gpt2_reference.py) on a randomly initialised model saved as safetensors,
/// through the training forward and the inference pass, and its KV cache against the full
/// forward, on every backend.
final class GPT2ReferenceTests: XCTestCase {
    struct Fixture {
        let model: GPT2Model
        let parameters: Parameters
        let folder: URL
    }

    /// A random GPT-2 folder from make_gpt2.py, loaded through the normal Hugging Face path.
    static func makeModel() throws -> Fixture {
        let folder = try TestSupport.temporaryDirectory("gpt2")
        try TestSupport.runPython(TestSupport.referenceScript("make_gpt2.py"),
                                  ["--out", folder.path, "--vocab-size", "97", "--layers", "2", "--heads", "4",
                                   "--embd", "32", "--positions", "64", "--seed", "11"])
        var layout = Parameters.Layout()
        let backbone = try Backbones.make(config: folder.appendingPathComponent("config.json"), layout: &layout)
        guard let model = backbone as? GPT2Model else { throw TestSupport.Failure("model_type gpt2 did not build a GPT2Model") }
        let parameters = Parameters(layout)
        model.bind(parameters)
        try Backbones.loadWeights(into: parameters, group: .backbone, prefixes: model.weightPrefixes,
                                  from: folder.appendingPathComponent("model.safetensors"))
        return Fixture(model: model, parameters: parameters, folder: folder)
    }

    static func reference(_ folder: URL, input: [String: Any]) throws -> SafetensorsFile {
        let inputURL = folder.appendingPathComponent("input.json"), output = folder.appendingPathComponent("reference.safetensors")
        try JSONSerialization.data(withJSONObject: input).write(to: inputURL)
        try TestSupport.runPython(TestSupport.referenceScript("gpt2_reference.py"),
                                  ["--model", folder.path, "--input", inputURL.path, "--output", output.path])
        return try SafetensorsFile(contentsOf: output)
    }

    /// Token embeddings; callers keep the returned tensor alive while a pointer to it is in use.
    func embed(_ f: Fixture, _ ids: [Int32]) -> Tensor {
        let t = Tensor(shape: [ids.count, f.model.hiddenSize])
        f.model.embedTokens(out: t.data, ids: ids, parameters: f.parameters)
        return t
    }

    func testPackedForwardAndLogitsMatchNumpy() throws {
        let f = try Self.makeModel()
        let sequences: [[Int32]] = [[5, 17, 3, 88, 42, 1, 0], [9], [60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 2]]
        let reference = try Self.reference(f.folder, input: ["ids": sequences.map { $0.map(Int.init) }])
        let batch = PackedBatch(lengths: sequences.map(\.count))
        let (C, V) = (f.model.hiddenSize, f.model.vocabularySize)
        let inputs = embed(f, sequences.flatMap { $0 })
        let logits = Tensor(shape: [batch.tokens, V])
        try TestSupport.eachBackend { backend in
            for (path, hidden) in [("forward", f.model.forward(embeddings: inputs.data, batch: batch, training: false)),
                                   ("infer", f.model.infer(embeddings: inputs.data, batch: batch))] {
                f.model.logits(out: logits.data, hidden: hidden, N: batch.tokens)
                for b in 0..<batch.count {
                    let h = try reference.tensor("hidden.\(b)", expectedShape: [sequences[b].count, C])
                    let l = try reference.tensor("logits.\(b)", expectedShape: [sequences[b].count, V])
                    let worstHidden = (0..<h.count).map { abs(hidden[batch.starts[b] * C + $0] - h[$0]) }.max() ?? 0
                    let worstLogit = (0..<l.count).map { abs(logits[batch.starts[b] * V + $0] - l[$0]) }.max() ?? 0
                    XCTAssertLessThan(worstHidden, 1e-4, "\(backend) \(path): hidden states of sequence \(b)")
                    XCTAssertLessThan(worstLogit, 1e-4, "\(backend) \(path): logits of sequence \(b)")
                }
            }
        }
    }

    func testCachedContinuationsMatchNumpyAndFullForward() throws {
        let f = try Self.makeModel()
        let prefix: [Int32] = [4, 8, 15, 16, 23, 42, 7, 1, 90]
        let continuations: [[Int32]] = [[3, 2, 1], [50], [11, 12, 13, 14, 15]]
        let reference = try Self.reference(f.folder, input: ["prefix": prefix.map(Int.init), "continuations": continuations.map { $0.map(Int.init) }])
        let C = f.model.hiddenSize
        let prefixInputs = embed(f, prefix)
        let batch = PackedBatch(lengths: continuations.map(\.count))
        let inputs = embed(f, continuations.flatMap { $0 })
        try TestSupport.eachBackend { backend in
            let cache = f.model.makeCache()
            _ = f.model.extend(cache, embeddings: prefixInputs.data, count: prefix.count)
            XCTAssertEqual(cache.count, prefix.count)
            let hidden = f.model.continuations(after: cache, embeddings: inputs.data, batch: batch)
            for (j, continuation) in continuations.enumerated() {
                let full = try reference.tensor("hidden.\(j)", expectedShape: [prefix.count + continuation.count, C])
                var worst: Float = 0
                for t in 0..<continuation.count {
                    for c in 0..<C { worst = max(worst, abs(hidden[(batch.starts[j] + t) * C + c] - full[(prefix.count + t) * C + c])) }
                }
                XCTAssertLessThan(worst, 1e-4, "\(backend): continuation \(j)")
            }
            XCTAssertEqual(cache.count, prefix.count, "scoring continuations must not change the cache")
        }
    }

    func testIncrementalDecodingEqualsFullForward() throws {
        let f = try Self.makeModel()
        let ids: [Int32] = [12, 0, 96, 33, 33, 5, 71, 2, 8, 19]
        let C = f.model.hiddenSize
        let fullHidden = Tensor(shape: [ids.count, C])
        let inputs = embed(f, ids)
        TestSupport.eachBackend { backend in
            fullHidden.data.update(from: f.model.forward(embeddings: inputs.data, batch: PackedBatch(lengths: [ids.count]), training: false),
                                   count: fullHidden.count)
            let cache = f.model.makeCache()
            // A first chunk of 3, then one token at a time (the cache grows past its first allocation).
            var position = 0
            for chunk in [Array(ids[0..<3])] + ids[3...].map({ [$0] }) {
                let chunkInputs = embed(f, chunk)
                let h = f.model.extend(cache, embeddings: chunkInputs.data, count: chunk.count)
                var worst: Float = 0
                for t in 0..<chunk.count {
                    for c in 0..<C { worst = max(worst, abs(h[t * C + c] - fullHidden[(position + t) * C + c])) }
                }
                XCTAssertLessThanOrEqual(worst, 1e-5, "\(backend): tokens from \(position)")
                position += chunk.count
            }
            XCTAssertEqual(cache.count, ids.count)
        }
    }

    func testBackwardMatchesFiniteDifferences() throws {
        let json = """
        {"model_type": "gpt2", "vocab_size": 19, "n_positions": 16, "n_embd": 12, "n_layer": 2, "n_head": 3,
         "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}
        """
        var layout = Parameters.Layout()
        let model = GPT2Model(config: try JSONDecoder().decode(GPT2Config.self, from: Data(json.utf8)), layout: &layout)
        let parameters = Parameters(layout)
        model.bind(parameters)
        BackboneGradientTests.randomize(parameters, seed: 5)
        TestSupport.eachBackend { _ in
            checkBackbone(model, parameters: parameters, lengths: [4, 1, 6])
            checkBackbone(model, parameters: parameters, lengths: [5, 2], dropout: 0.3)
        }
    }
}
