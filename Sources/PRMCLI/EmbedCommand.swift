import Foundation
import PRMCore
import PRMModel

/// `prm embed`: sentence embeddings, one JSON object per line, in input order.
enum EmbedCommand: Subcommand {
    static let spec = CommandSpec(
        name: "embed",
        abstract: "Embed texts with a pretrained encoder (mean-pooled, L2-normalised).",
        discussion: """
        Texts come from the arguments, or from --input (a JSONL file of {"text": ...} objects or JSON \
        strings; '-' for stdin), or else one per line on stdin. Output is one line per text: \
        {"text": ..., "embedding": [...]}, in input order. Texts are read \(window) at a time, grouped \
        by length and packed without padding, so memory does not grow with the input; a bad input \
        line stops the command after the texts before its window were written.

        Examples:
          prm embed "A man is eating food." "A man is eating pasta."
          printf 'first line\\nsecond line\\n' | prm embed
          prm embed --input texts.jsonl --field sentence > embeddings.jsonl
        """,
        options: [
            .value("model", placeholder: "DIR", help: "Hugging Face model folder (config.json, model.safetensors, tokenizer.json).",
                   default: ModelLocator.searchOrder),
            .value("input", placeholder: "FILE", help: "JSONL input ('-' for stdin)."),
            .value("field", placeholder: "NAME", help: "Field holding the text in JSONL objects.", default: "text"),
            .value("max-tokens", placeholder: "N", help: "Longest sequence kept, special tokens included.", default: "256"),
            .value("batch-tokens", placeholder: "N", help: "Tokens per packed batch.", default: "8192"),
            PrecisionOption.spec, PrecisionOption.int8Products,
        ],
        positionals: [.variadic("text", help: "Texts to embed.")])

    /// Texts read, sorted by length, embedded and written per window: peak memory depends on the
    /// window and the batch budget, not on how many texts there are.
    static let window = 1024

    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output out: inout Out) throws -> Int32 {
        let source = try TextSource(arguments)
        let folder = try arguments.modelFolder()
        let maxTokens = try arguments.int("max-tokens", default: 256), batchTokens = try arguments.count("batch-tokens")
        let model = try Backbones.load(folder: folder, precision: try arguments.precision())
        // Without room for one text token the embedder would have nothing to embed (and a
        // negative room would trap when truncating).
        let special = model.tokenizer.specialTokensPerSequence
        guard maxTokens > special else {
            throw arguments.usageError("--max-tokens must be at least \(special + 1) (the model adds \(special) special tokens), got \(maxTokens)")
        }
        let embedder = SentenceEmbedder(model: model, maxTokens: maxTokens, tokensPerBatch: batchTokens)
        let progress = ProgressBar(total: source.knownCount, label: "embed", unit: "text")
        var written = 0
        while case let texts = try source.next(window), !texts.isEmpty {
            for (text, vector) in zip(texts, embedder.embed(texts, progress: progress)) {
                // JSON has no number for NaN: a non-finite vector is an error, not a line of nulls.
                guard vector.allSatisfy(\.isFinite) else { throw CLIError("text \(written + 1): the embedding is not finite") }
                var line = JSONWriter(capacity: 16 * vector.count + text.utf8.count + 32)
                line.beginObject()
                line.key("embedding"); line.numbers(vector)
                line.key("text"); line.string(text)
                line.endObject()
                out.write(line.text + "\n")
                written += 1
            }
        }
        progress.finish()
        return 0
    }
}
