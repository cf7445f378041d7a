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
        {"text": ..., "embedding": [...]}, in input order. Batches are packed without padding and \
        grouped by length.

        Examples:
          prm embed "A man is eating food." "A man is eating pasta."
          printf 'first line\\nsecond line\\n' | prm embed
          prm embed --input texts.jsonl --field sentence > embeddings.jsonl
        """,
        options: [
            .value("model", placeholder: "DIR", help: "Hugging Face model folder (config.json, model.safetensors, tokenizer.json).",
                   default: "models/all-MiniLM-L6-v2"),
            .value("input", placeholder: "FILE", help: "JSONL input ('-' for stdin)."),
            .value("field", placeholder: "NAME", help: "Field holding the text in JSONL objects.", default: "text"),
            .value("max-tokens", placeholder: "N", help: "Longest sequence kept, special tokens included.", default: "256"),
            .value("batch-tokens", placeholder: "N", help: "Tokens per packed batch.", default: "8192"),
        ],
        positionals: [.variadic("text", help: "Texts to embed.")])

    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output out: inout Out) throws -> Int32 {
        let texts = try readTexts(arguments)
        let folder = try modelFolder(arguments)
        let maxTokens = try arguments.int("max-tokens", default: 256), batchTokens = try arguments.int("batch-tokens", default: 8192)
        let model = try Backbones.load(folder: folder)
        // Without room for one text token the embedder would have nothing to embed (and a
        // negative room would trap when truncating).
        let special = model.tokenizer.specialTokensPerSequence
        guard maxTokens > special else {
            throw arguments.usageError("--max-tokens must be at least \(special + 1) (the model adds \(special) special tokens), got \(maxTokens)")
        }
        let embedder = SentenceEmbedder(model: model, maxTokens: maxTokens, tokensPerBatch: batchTokens)
        let progress = ProgressBar(total: texts.count, label: "embed", unit: "text")
        let vectors = embedder.embed(texts, progress: progress)
        progress.finish()
        for (text, vector) in zip(texts, vectors) {
            let line = try JSONSerialization.data(withJSONObject: ["text": text, "embedding": vector.map(Double.init)],
                                                  options: [.sortedKeys, .withoutEscapingSlashes])
            out.write(String(decoding: line, as: UTF8.self) + "\n")
        }
        return 0
    }

    /// The folder given with `option`, else the installed default.
    static func modelFolder(_ arguments: ParsedArguments, option: String = "model") throws -> URL {
        if arguments.isSet(option), let path = arguments.string(option) { return URL(fileURLWithPath: path) }
        return try ModelLocator.defaultBackbone()
    }

    static func readTexts(_ arguments: ParsedArguments) throws -> [String] {
        let positional = arguments.positionalList("text")
        if let input = arguments.string("input") {
            guard positional.isEmpty else { throw arguments.usageError("give texts as arguments or with --input, not both") }
            let data = try InputFiles.read(input)
            return try JSONLines.texts(data, name: input, field: arguments.string("field", default: "text"))
        }
        if !positional.isEmpty { return positional }
        let data = FileHandle.standardInput.readDataToEndOfFile()
        guard let text = String(data: data, encoding: .utf8) else { throw CLIError("stdin is not valid UTF-8") }
        return text.split(separator: "\n", omittingEmptySubsequences: true).map { String($0.hasSuffix("\r") ? $0.dropLast() : $0) }
    }
}
