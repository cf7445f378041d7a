import Foundation

// The stages of a Hugging Face tokenizer, one protocol per `tokenizer.json` section. Text moves
// between them as arrays of Unicode scalar values (`UInt32`), so no stage builds a `String`
// per token. Each stage is built from its JSON by its `Section`'s registry, keyed by
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

/// One polymorphic section of `tokenizer.json`: its name in messages and the registry mapping its
/// `type` to a constructor. An unknown type is a `ConfigProblem(.unsupported)` naming both.
struct Section<T>: Sendable {
    typealias Make = @Sendable (any Decoder) throws -> T
    let name: String
    let registry: [String: Make]

    /// `inferredType` stands in for a missing `type` (older files leave the model's out).
    func make(from decoder: any Decoder, inferredType: String? = nil) throws -> T {
        let tag = try TypeTag(from: decoder)
        guard let type = tag.type ?? inferredType else {
            throw ConfigProblem(.missingKey, "\(name) has no 'type'")
        }
        guard let make = registry[type] else {
            throw ConfigProblem(.unsupported, "unsupported \(name) '\(type)' (supported: \(registry.keys.sorted().joined(separator: ", ")))")
        }
        return try make(decoder)
    }
}

/// The sections a `tokenizer.json` may hold and the types prm supports in each.
enum Sections {
    static let normalizer = Section<any Normalizer>(name: "normalizer", registry: [
        "BertNormalizer": { try BertNormalizer(from: $0) },
    ])
    static let preTokenizer = Section<any PreTokenizer>(name: "pre-tokenizer", registry: [
        "BertPreTokenizer": { _ in BertPreTokenizer() },
        "ByteLevel": { try ByteLevelPreTokenizer(from: $0) },
        "Digits": { try DigitsPreTokenizer(from: $0) },
        "Sequence": { try SequencePreTokenizer(from: $0) },
    ])
    static let model = Section<any TokenModel>(name: "model type", registry: [
        "WordPiece": { try WordPieceModel(from: $0) },
        "BPE": { try BPEModel(from: $0) },
    ])
    static let postProcessor = Section<any PostProcessor>(name: "post-processor", registry: [
        "TemplateProcessing": { try TemplateProcessing(from: $0) },
        "BertProcessing": { try ClsSepProcessing(from: $0) },
        "RobertaProcessing": { try ClsSepProcessing(from: $0) },
        "ByteLevel": { _ in NoSpecialTokens() },
        "Sequence": { try SequenceProcessing(from: $0) },
    ])
    static let decoder = Section<any TokenDecoder>(name: "decoder", registry: [
        "WordPiece": { try WordPieceDecoder(from: $0) },
        "ByteLevel": { _ in ByteLevelDecoder() },
    ])
}

extension KeyedDecodingContainer {
    /// Decodes the section under `key`, or nil when the key is absent or null.
    func decodeIfPresent<T>(_ section: Section<T>, forKey key: Key) throws -> T? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        return try section.make(from: superDecoder(forKey: key))
    }
}
