import Foundation
import XCTest
import PRMCore
import PRMTokenizers
import PRMTestSupport
@testable import PRMModel

/// The decoders' inference at bf16 and int8 against fp32 on the same model: GPT-2 (`infer` on
/// ragged packed batches) and the Llama decoder on the real SmolLM2 GGUF weights (`extend` over
/// prompts of different lengths, then one `decodeStep` of sequences with ragged prefixes).
///
/// The bounds follow from the per-product ones of `LowPrecisionLinearTests` (bf16: relative
/// 2u + K·2⁻²⁴ with u = 2⁻⁹ per product; int8: half a grid step of the weights' channel and the
/// activations' row per term), compounded through every layer's norms, residuals and softmax,
/// which no closed form tracks; so, as for BERT, the assertions are the measured worst errors on
/// these batches with a margin (measured values in each test's comment). A wrong scale, layout,
/// bias block or row offset gives errors of order 1.
final class DecoderLowPrecisionTests: XCTestCase {
    /// Worst relative L2 error of a row of `actual` against `expected` (rows of width C).
    static func worstRowError(_ actual: [Float], _ expected: [Float], C: Int) -> Double {
        stride(from: 0, to: expected.count, by: C).map { start in
            var (difference, norm) = (0.0, 0.0)
            for c in start..<(start + C) {
                let (a, e) = (Double(actual[c]), Double(expected[c]))
                difference += (a - e) * (a - e)
                norm += e * e
            }
            return (difference / norm).squareRoot()
        }.max() ?? 0
    }

    // MARK: GPT-2

    static let gpt2Batches = [[33, 1, 64, 7, 2], [5, 64, 1]]

    /// Measured worst token relative error: bf16 0.0081, int8 0.027 (2 layers, random weights).
    func testGPT2InferAtEachPrecisionStaysCloseToFP32() throws {
        let fixture = try GPT2ReferenceTests.makeModel()
        let model = fixture.model, C = model.hiddenSize
        var rng = RandomSource(seed: 5)
        for lengths in Self.gpt2Batches {
            let batch = PackedBatch(lengths: lengths)
            let ids = (0..<batch.tokens).map { _ in Int32(rng.next() % UInt64(model.vocabularySize)) }
            let inputs = Tensor(shape: [batch.tokens, C])
            model.embedTokens(out: inputs.data, ids: ids, parameters: fixture.parameters)
            let expected = Array(UnsafeBufferPointer(start: model.infer(embeddings: inputs.data, batch: batch), count: batch.tokens * C))
            for (precision, bound) in [(Precision.bf16, 0.02), (.int8, 0.06)] {
                // A model of its own per precision: bf16 and int8 release the fp32 matrices.
                let low = try GPT2ReferenceTests.makeModel().model
                try low.useInferencePrecision(precision)
                XCTAssertEqual(low.inferencePrecision, precision)
                let hidden = Array(UnsafeBufferPointer(start: low.infer(embeddings: inputs.data, batch: batch), count: batch.tokens * C))
                let worst = Self.worstRowError(hidden, expected, C: C)
                print("GPT-2 \(precision) lengths \(lengths): worst token relative error \(worst)")
                XCTAssertLessThanOrEqual(worst, bound, "GPT-2 \(precision) lengths \(lengths)")
                XCTAssertGreaterThan(worst, 0, "GPT-2 \(precision): identical to fp32, is the precision used at all?")
            }
        }
        // fp32 infer is fp32's forward pass.
        let batch = PackedBatch(lengths: [3])
        let inputs = Tensor(shape: [3, C])
        model.embedTokens(out: inputs.data, ids: [1, 2, 3], parameters: fixture.parameters)
        let again = Array(UnsafeBufferPointer(start: model.infer(embeddings: inputs.data, batch: batch), count: 3 * C))
        let forward = Array(UnsafeBufferPointer(start: model.forward(embeddings: inputs.data, batch: batch, training: false), count: 3 * C))
        XCTAssertLessThan(Self.worstRowError(again, forward, C: C), 1e-5)
    }

    // MARK: Llama (SmolLM2)

    struct DecoderOutputs {
        /// Each prompt's hidden states after `extend` on a fresh cache, then the decoding step's rows.
        var prompts: [[Float]]
        var step: [Float]
        /// The next-token logits after each prompt, and after the step.
        var logits: [[Float]]
        var nextTokens: [Int] { logits.map { row in row.indices.max { row[$0] < row[$1] }! } }
    }

    /// The three chat prompts of `LlamaReferenceTests` (different lengths) through `extend`, then
    /// one `decodeStep` of all three over their own prompt caches (prefixes of different lengths).
    static func run(_ model: LlamaModel, prompts: [[Int32]]) -> DecoderOutputs {
        let (C, V) = (model.config.hiddenSize, model.vocabularySize)
        func logits(_ hidden: UnsafePointer<Float>) -> [Float] {
            var row = [Float](repeating: 0, count: V)
            row.withUnsafeMutableBufferPointer { model.logits(out: $0.baseAddress!, hidden: hidden, N: 1) }
            return row
        }
        var outputs = DecoderOutputs(prompts: [], step: [], logits: [])
        var caches: [KVCache] = []
        for ids in prompts {
            let cache = model.makeCache()
            let hidden = model.extend(cache, tokens: ids)
            outputs.prompts.append(Array(UnsafeBufferPointer(start: hidden, count: ids.count * C)))
            outputs.logits.append(logits(hidden + (ids.count - 1) * C))
            caches.append(cache)
        }
        let own = prompts.map { _ in model.makeCache() }
        let tokens = outputs.nextTokens.map(Int32.init)
        let step = model.decodeStep(prefixes: caches, own: own, tokens: tokens)
        outputs.step = Array(UnsafeBufferPointer(start: step, count: prompts.count * C))
        for b in prompts.indices { outputs.logits.append(logits(step + b * C)) }
        return outputs
    }

    /// Measured on SmolLM2-135M (30 layers): worst token relative error bf16 0.027, int8 0.28. bf16's
    /// six greedy next tokens are fp32's. int8 picks another token at one of the six, the step after
    /// the second prompt, where fp32's five likeliest tokens lie within 0.39 of each other and int8's
    /// within 0.07: int8 ranks fp32's pick fifth there, 0.06 below its own (among its three likeliest
    /// before decoding's attention and few-row products reordered their fp32 sums). So the int8 check
    /// is by likelihood, not rank: int8 finds each fp32 pick at least half as likely as its own (a
    /// logit gap ≤ ln 2).
    func testLlamaAtEachPrecisionStaysCloseToFP32() throws {
        let file = try GGUFFile(contentsOf: try TestSupport.smolLM2File())
        let model = try LlamaModel.load(gguf: file)
        let tokenizer = try GGUFTokenizer(file)
        let template = try ChatTemplate.recognize(try file.string("tokenizer.chat_template"), origin: file.url.path)
        let prompts = LlamaReferenceTests.prompts.map { messages in
            tokenizer.tokenizer.encode(template.render(messages, addGenerationPrompt: true), addSpecialTokens: false).map(Int32.init)
        }
        XCTAssertEqual(Set(prompts.map(\.count)).count, prompts.count, "the prompts should have different lengths")
        let C = model.config.hiddenSize
        let expected = Self.run(model, prompts: prompts)
        for (precision, bound) in [(Precision.bf16, 0.06), (.int8, 0.45)] {
            // A model of its own per precision: bf16 and int8 release the fp32 matrices.
            let low = try LlamaModel.load(gguf: file)
            try low.useInferencePrecision(precision)
            XCTAssertEqual(low.inferencePrecision, precision)
            let actual = Self.run(low, prompts: prompts)
            var worst = Self.worstRowError(actual.step, expected.step, C: C)
            for (a, e) in zip(actual.prompts, expected.prompts) { worst = max(worst, Self.worstRowError(a, e, C: C)) }
            print("SmolLM2 \(precision): worst token relative error \(worst); next tokens \(actual.nextTokens) vs fp32 \(expected.nextTokens)")
            XCTAssertLessThanOrEqual(worst, bound, "SmolLM2 \(precision)")
            XCTAssertGreaterThan(worst, 0, "SmolLM2 \(precision): identical to fp32, is the precision used at all?")
            if precision == .bf16 {
                XCTAssertEqual(actual.nextTokens, expected.nextTokens, "SmolLM2 bf16: greedy next tokens")
            } else {
                for (row, token) in zip(actual.logits, expected.nextTokens) {
                    let gap = row.max()! - row[token]
                    XCTAssertLessThanOrEqual(gap, Float(log(2.0)), "SmolLM2 int8: fp32's next token \(token) is \(gap) below int8's likeliest")
                }
            }
        }
    }

    /// Preparing int8 releases the layers' fp32 matrices (the process's resident size falls by
    /// about their size less the int8 copies', 4 − 1 bytes a weight), keeps the tied embeddings,
    /// and refuses another precision afterwards.
    func testLlamaAtInt8ReleasesTheFP32Matrices() throws {
        let model = try LlamaModel.load(gguf: try GGUFFile(contentsOf: try TestSupport.smolLM2File()))
        let p = model.parameters
        let embeddings = try XCTUnwrap(p.handle(named: "model.embed_tokens.weight"))
        let matrices = p.entries.filter { $0.name.hasPrefix("model.layers.") && $0.shape.count == 2 }.map(\.count).reduce(0, +)
        let probe = try XCTUnwrap(p.handle(named: "model.layers.3.mlp.down_proj.weight"))
        let (kept, middle) = (p.value(embeddings)[4096], p.entry(probe).count / 2)
        XCTAssertNotEqual(p.value(probe)[middle], 0)
        let before = try ResidentMemory.currentMegabytes()
        try model.useInferencePrecision(.int8)
        let after = try ResidentMemory.currentMegabytes(), fp32MB = Double(4 * matrices) / 1_048_576
        print("SmolLM2 int8 preparation: resident \(before) -> \(after) MB; layer matrices \(fp32MB) MB at fp32")
        XCTAssertLessThan(after, before - fp32MB / 2, "resident size should fall by ~3/4 of the layer matrices")
        XCTAssertEqual(p.value(probe)[middle], 0)
        XCTAssertEqual(p.value(embeddings)[4096], kept)
        XCTAssertThrowsError(try model.useInferencePrecision(.bf16))
    }
}
