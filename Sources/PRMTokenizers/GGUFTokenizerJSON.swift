import Foundation
import PRMCore

/// A GGUF file's tokenizer written out as the Hugging Face `tokenizer.json` it came from, so a
/// reward model trained on a GGUF backbone saves a checkpoint folder like any other (config.json,
/// model.safetensors, tokenizer.json) and reloads without the GGUF file.
extension GGUFTokenizer {
    /// The pre-tokenizer sections of `tokenizer.json` for the `tokenizer.ggml.pre` values
    /// `preTokenizers` builds (the same pipelines; GGUFTokenizerTests checks both encode alike).
    static let preTokenizerJSON: [String: String] = [
        "smollm": #"{"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, "#
            + #"{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]}"#,
        "gpt-2": #"{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}"#,
    ]

    /// tokenizer.json bytes: the BPE vocabulary and merges, control and user-defined tokens as
    /// added tokens, the pre-tokenizer `tokenizer.ggml.pre` names and the byte-level decoder.
    /// Throws what `init(_:)` throws for a tokenizer it cannot build.
    public static func tokenizerJSON(_ file: GGUFFile) throws -> Data {
        _ = try GGUFTokenizer(file)  // the same checks, errors naming the file and key
        let tokens = try file.strings("tokenizer.ggml.tokens")
        let types = file.contains(key: "tokenizer.ggml.token_type") ? try file.ints("tokenizer.ggml.token_type") : []
        let merges = try file.strings("tokenizer.ggml.merges")
        let pre = try file.string("tokenizer.ggml.pre")
        guard let preTokenizer = preTokenizerJSON[pre] else { preconditionFailure("no tokenizer.json section for pre-tokenizer '\(pre)'") }
        var json = JSONWriter(capacity: 64 * tokens.count)
        json.beginObject()
        json.key("version"); json.string("1.0")
        json.key("added_tokens")
        json.beginArray()
        for (id, type) in types.enumerated() where type == control || type == userDefined {
            json.beginObject()
            json.key("id"); json.number(id)
            json.key("content"); json.string(tokens[id])
            json.key("single_word"); json.bool(false)
            json.key("lstrip"); json.bool(false)
            json.key("rstrip"); json.bool(false)
            json.key("normalized"); json.bool(false)
            json.key("special"); json.bool(type == control)
            json.endObject()
        }
        json.endArray()
        json.key("normalizer"); json.null()
        json.key("pre_tokenizer"); json.value(try JSONReader.parse(Data(preTokenizer.utf8)))
        json.key("post_processor"); json.null()
        json.key("decoder"); json.value(try JSONReader.parse(Data(#"{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}"#.utf8)))
        json.key("model")
        json.beginObject()
        json.key("type"); json.string("BPE")
        json.key("unk_token"); json.null()
        json.key("fuse_unk"); json.bool(false)
        json.key("byte_fallback"); json.bool(false)
        json.key("ignore_merges"); json.bool(false)
        json.key("vocab")
        json.beginObject()
        var seen = Set<String>()
        for (id, token) in tokens.enumerated() where seen.insert(token).inserted {
            json.key(token); json.number(id)
        }
        json.endObject()
        json.key("merges")
        json.beginArray()
        for merge in merges { json.string(merge) }
        json.endArray()
        json.endObject()
        json.endObject()
        return Data(json.bytes)
    }
}
