import Foundation
import PRMCore

/// The tokenizer a GGUF file describes in its `tokenizer.ggml.*` metadata, built on the same
/// byte-level BPE pipeline as a `tokenizer.json`: the vocabulary (`tokens`, an id per index),
/// `merges` ("a b" by rank), control (type 3) and user-defined (type 4) tokens matched whole in
/// the raw text, and the pre-tokenizer named by `tokenizer.ggml.pre` as llama.cpp defines it.
public struct GGUFTokenizer: Sendable {
    public let tokenizer: any Tokenizer
    public let bosID: Int?
    public let eosID: Int?
    public let padID: Int?
    /// Whether llama.cpp would put BOS before a prompt (`tokenizer.ggml.add_bos_token`).
    public let addsBOS: Bool

    /// llama.cpp's token types (llama-vocab.h `llama_token_type`).
    static let control = 3, userDefined = 4

    /// `tokenizer.ggml.pre` values whose split llama.cpp defines as one of the pipelines here.
    static let preTokenizers: [String: @Sendable () -> any PreTokenizer] = [
        // llama-vocab.cpp LLAMA_VOCAB_PRE_TYPE_SMOLLM: "\p{N}" then the GPT-2 pattern, as
        // SmolLM2's tokenizer.json: Sequence [Digits(individual_digits), ByteLevel(add_prefix_space: false)].
        "smollm": { SequencePreTokenizer([DigitsPreTokenizer(individualDigits: true), ByteLevelPreTokenizer(addPrefixSpace: false)]) },
        // LLAMA_VOCAB_PRE_TYPE_GPT2: the GPT-2 pattern alone.
        "gpt-2": { ByteLevelPreTokenizer(addPrefixSpace: false) },
    ]

    /// Reads the tokenizer of `file`. Throws a `TokenizerError` naming the file and the key for a
    /// model other than "gpt2" (byte-level BPE), an unknown pre-tokenizer, or malformed arrays.
    public init(_ file: GGUFFile) throws {
        let path = file.url.path
        do {
            let model = try file.string("tokenizer.ggml.model")
            guard model == "gpt2" else {
                throw TokenizerError(.unsupported, file: path, problem: "key 'tokenizer.ggml.model': unsupported tokenizer '\(model)' (supported: gpt2, byte-level BPE)")
            }
            let pre = try file.string("tokenizer.ggml.pre")
            guard let makePre = Self.preTokenizers[pre] else {
                throw TokenizerError(.unsupported, file: path,
                                     problem: "key 'tokenizer.ggml.pre': unsupported pre-tokenizer '\(pre)' (supported: \(Self.preTokenizers.keys.sorted().joined(separator: ", ")))")
            }
            let tokens = try file.strings("tokenizer.ggml.tokens")
            let types = file.contains(key: "tokenizer.ggml.token_type") ? try file.ints("tokenizer.ggml.token_type") : []
            guard types.isEmpty || types.count == tokens.count else {
                throw TokenizerError(.invalidValue, file: path, problem: "key 'tokenizer.ggml.token_type': \(types.count) types for \(tokens.count) tokens")
            }
            var vocabulary: [String: Int] = [:]
            vocabulary.reserveCapacity(tokens.count)
            for (id, token) in tokens.enumerated() where vocabulary[token] == nil { vocabulary[token] = id }
            let merges = try BPEModel.splitLegacyMerges(try file.strings("tokenizer.ggml.merges"))
            let bpe = try BPEModel(vocabulary: vocabulary, merges: merges, unkToken: nil, continuingSubwordPrefix: nil,
                                   endOfWordSuffix: nil, fuseUnknown: false, byteFallback: false, ignoreMerges: false)
            let added = types.enumerated().compactMap { id, type -> AddedToken? in
                guard type == Self.control || type == Self.userDefined else { return nil }
                return AddedToken(id: id, content: tokens[id], special: type == Self.control)
            }
            let sections = TokenizerFile(addedTokens: added, preTokenizer: makePre(), model: bpe, decoder: ByteLevelDecoder())
            tokenizer = try PretrainedTokenizer(sections)
            func id(_ key: String) throws -> Int? {
                guard file.contains(key: key) else { return nil }
                let id = try file.int(key)
                guard id >= 0 && id < tokens.count else {
                    throw TokenizerError(.invalidValue, file: path, problem: "key '\(key)': id \(id) is outside the \(tokens.count) tokens")
                }
                return id
            }
            bosID = try id("tokenizer.ggml.bos_token_id")
            eosID = try id("tokenizer.ggml.eos_token_id")
            padID = try id("tokenizer.ggml.padding_token_id")
            addsBOS = file.contains(key: "tokenizer.ggml.add_bos_token") ? (file.metadata["tokenizer.ggml.add_bos_token"]?.bool ?? false) : false
        } catch let problem as ConfigProblem {
            throw TokenizerError(problem.kind, file: path, problem: problem.message)
        } catch let error as GGUFError {
            throw TokenizerError(error.kind == .missing ? .missingKey : .invalidValue, file: path,
                                 problem: error.subject.map { "\($0): \(error.problem)" } ?? error.problem)
        }
    }
}
