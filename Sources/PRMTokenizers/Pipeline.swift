import Foundation

// The stages of a Hugging Face tokenizer, one protocol per `tokenizer.json` section. Text moves
// between them as arrays of Unicode scalar values (`UInt32`), so no stage builds a `String`
// per token. Each stage is built from its JSON by one factory (`SectionFactory`), keyed by
// the section's `type`.

/// The `normalizer` section: rewrites a text segment before it is split.
protocol Normalizer: Sendable {
    /// Appends the normalized form of `input` to `output`.
    func normalize(_ input: UnsafeBufferPointer<UInt32>, into output: inout [UInt32])
}

/// Pieces of a pre-tokenized segment: their scalars back to back, and each piece's range.
struct Pieces {
    var scalars: [UInt32] = []
    var ranges: [Range<Int>] = []

    mutating func removeAll() {
        scalars.removeAll(keepingCapacity: true)
        ranges.removeAll(keepingCapacity: true)
    }

    /// Appends the scalars of `source` as one piece (nothing for an empty range: the reference
    /// drops empty splits).
    mutating func append<C: Collection>(_ source: C) where C.Element == UInt32 {
        guard !source.isEmpty else { return }
        let start = scalars.count
        scalars.append(contentsOf: source)
        ranges.append(start..<scalars.count)
    }
}

/// The `pre_tokenizer` section: splits a normalized segment into the pieces the model sees.
protocol PreTokenizer: Sendable {
    func preTokenize(_ text: UnsafeBufferPointer<UInt32>, into pieces: inout Pieces)
}

/// The `model` section: turns one piece into ids, and maps between ids and tokens.
protocol TokenModel: Sendable {
    func tokenize(_ piece: UnsafeBufferPointer<UInt32>, into ids: inout [Int])
    func id(of token: String) -> Int?
    func token(of id: Int) -> String?
    /// One past the largest id in the vocabulary.
    var idCount: Int { get }
    /// The number of vocabulary entries (the reference's `get_vocab_size` of the model).
    var vocabularyCount: Int { get }
}

/// The `post_processor` section, for a single sequence.
protocol PostProcessor: Sendable {
    func addingSpecialTokens(_ ids: [Int]) -> [Int]
    var specialTokenCount: Int { get }
}

/// The `decoder` section: joins tokens back into text.
protocol TokenDecoder: Sendable {
    func decode(_ tokens: [String]) -> String
}

/// Reads a section's `type` before the factory picks the concrete decoder.
private struct TypeTag: Decodable {
    let type: String?
}

/// The registries mapping each section's `type` to its constructor. An unknown type is a
/// `ConfigProblem(.unsupported)` naming the section and the type.
enum SectionFactory {
    typealias Make<T> = @Sendable (any Decoder) throws -> T

    static let normalizers: [String: Make<any Normalizer>] = [
        "BertNormalizer": { try BertNormalizer(from: $0) },
    ]
    static let preTokenizers: [String: Make<any PreTokenizer>] = [
        "BertPreTokenizer": { _ in BertPreTokenizer() },
        "ByteLevel": { try ByteLevelPreTokenizer(from: $0) },
    ]
    static let models: [String: Make<any TokenModel>] = [
        "WordPiece": { try WordPieceModel(from: $0) },
        "BPE": { try BPEModel(from: $0) },
    ]
    static let postProcessors: [String: Make<any PostProcessor>] = [
        "TemplateProcessing": { try TemplateProcessing(from: $0) },
        "BertProcessing": { try ClsSepProcessing(from: $0) },
        "RobertaProcessing": { try ClsSepProcessing(from: $0) },
        "ByteLevel": { _ in NoSpecialTokens() },
        "Sequence": { try SequenceProcessing(from: $0) },
    ]
    static let decoders: [String: Make<any TokenDecoder>] = [
        "WordPiece": { try WordPieceDecoder(from: $0) },
        "ByteLevel": { _ in ByteLevelDecoder() },
    ]

    static func make<T>(_ registry: [String: Make<T>], section: String, from decoder: any Decoder,
                        inferredType: String? = nil) throws -> T {
        let tag = try TypeTag(from: decoder)
        guard let type = tag.type ?? inferredType else {
            throw ConfigProblem(.missingKey, "\(section) has no 'type'")
        }
        guard let make = registry[type] else {
            throw ConfigProblem(.unsupported, "unsupported \(section) '\(type)' (supported: \(registry.keys.sorted().joined(separator: ", ")))")
        }
        return try make(decoder)
    }
}

/// Wrappers that let `TokenizerFile` decode each polymorphic section through the factory.
struct AnyNormalizer: Decodable {
    let value: any Normalizer
    init(from decoder: any Decoder) throws {
        value = try SectionFactory.make(SectionFactory.normalizers, section: "normalizer", from: decoder)
    }
}

struct AnyPreTokenizer: Decodable {
    let value: any PreTokenizer
    init(from decoder: any Decoder) throws {
        value = try SectionFactory.make(SectionFactory.preTokenizers, section: "pre-tokenizer", from: decoder)
    }
}

struct AnyModel: Decodable {
    let value: any TokenModel
    private enum Keys: String, CodingKey { case merges, maxInputCharsPerWord = "max_input_chars_per_word" }
    init(from decoder: any Decoder) throws {
        // The reference accepts a model without `type` (older files); infer it from its keys.
        let keys = try decoder.container(keyedBy: Keys.self)
        let inferred = keys.contains(.merges) ? "BPE" : keys.contains(.maxInputCharsPerWord) ? "WordPiece" : nil
        value = try SectionFactory.make(SectionFactory.models, section: "model type", from: decoder,
                                        inferredType: inferred)
    }
}

struct AnyPostProcessor: Decodable {
    let value: any PostProcessor
    init(from decoder: any Decoder) throws {
        value = try SectionFactory.make(SectionFactory.postProcessors, section: "post-processor", from: decoder)
    }
}

struct AnyDecoder: Decodable {
    let value: any TokenDecoder
    init(from decoder: any Decoder) throws {
        value = try SectionFactory.make(SectionFactory.decoders, section: "decoder", from: decoder)
    }
}
