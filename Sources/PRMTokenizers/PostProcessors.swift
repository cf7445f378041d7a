import Foundation

/// `TemplateProcessing` (tokenizers/src/processors/template.rs), single-sequence template only:
/// `[{"SpecialToken": {"id": "[CLS]"}}, {"Sequence": {"id": "A"}}, {"SpecialToken": {"id": "[SEP]"}}]`
/// with each special token's ids taken from `special_tokens`.
struct TemplateProcessing: PostProcessor, Decodable {
    /// Ids before and after the sequence.
    let prefix: [Int]
    let suffix: [Int]

    private enum CodingKeys: String, CodingKey {
        case single
        case specialTokens = "special_tokens"
    }

    private struct Piece: Decodable {
        struct Reference: Decodable { let id: String }
        let sequence: Reference?
        let specialToken: Reference?
        enum CodingKeys: String, CodingKey {
            case sequence = "Sequence"
            case specialToken = "SpecialToken"
        }
    }

    private struct SpecialToken: Decodable {
        let id: String
        let ids: [Int]
    }

    init(from decoder: any Decoder) throws {
        let keys = try decoder.container(keyedBy: CodingKeys.self)
        let single = try keys.decode([Piece].self, forKey: .single)
        let specials = try keys.decodeIfPresent([String: SpecialToken].self, forKey: .specialTokens) ?? [:]
        var prefix: [Int] = [], suffix: [Int] = []
        var seenSequence = false
        for piece in single {
            if let sequence = piece.sequence {
                guard sequence.id == "A", !seenSequence else {
                    throw ConfigProblem(.invalidValue, "post_processor.single uses sequence '\(sequence.id)'; a single-sequence template has one 'A'")
                }
                seenSequence = true
            } else if let special = piece.specialToken {
                guard let entry = specials[special.id] else {
                    throw ConfigProblem(.missingToken, "post_processor.single uses '\(special.id)', which is not in post_processor.special_tokens")
                }
                if seenSequence { suffix += entry.ids } else { prefix += entry.ids }
            } else {
                throw ConfigProblem(.invalidValue, "post_processor.single has a piece that is neither Sequence nor SpecialToken")
            }
        }
        guard seenSequence else {
            throw ConfigProblem(.invalidValue, "post_processor.single has no sequence 'A'")
        }
        self.prefix = prefix
        self.suffix = suffix
    }

    func addingSpecialTokens(_ ids: [Int]) -> [Int] { prefix + ids + suffix }
    var specialTokenCount: Int { prefix.count + suffix.count }
}

/// `BertProcessing` and `RobertaProcessing`: `cls A sep` for a single sequence, with
/// `"cls": ["[CLS]", 101], "sep": ["[SEP]", 102]`.
struct ClsSepProcessing: PostProcessor, Decodable {
    let cls: Int
    let sep: Int

    private enum CodingKeys: String, CodingKey { case cls, sep }

    /// A `[token, id]` pair: a heterogeneous JSON array.
    private struct TokenAndID: Decodable {
        let id: Int
        init(from decoder: any Decoder) throws {
            var items = try decoder.unkeyedContainer()
            _ = try items.decode(String.self)
            id = try items.decode(Int.self)
        }
    }

    init(from decoder: any Decoder) throws {
        let keys = try decoder.container(keyedBy: CodingKeys.self)
        cls = try keys.decode(TokenAndID.self, forKey: .cls).id
        sep = try keys.decode(TokenAndID.self, forKey: .sep).id
    }

    func addingSpecialTokens(_ ids: [Int]) -> [Int] { [cls] + ids + [sep] }
    var specialTokenCount: Int { 2 }
}

/// `Sequence`: the processors applied in order.
struct SequenceProcessing: PostProcessor, Decodable {
    let processors: [any PostProcessor]

    private enum CodingKeys: String, CodingKey { case processors }

    init(from decoder: any Decoder) throws {
        let keys = try decoder.container(keyedBy: CodingKeys.self)
        var list = try keys.nestedUnkeyedContainer(forKey: .processors)
        var processors: [any PostProcessor] = []
        while !list.isAtEnd { processors.append(try Sections.postProcessor.make(from: list.superDecoder())) }
        self.processors = processors
    }

    func addingSpecialTokens(_ ids: [Int]) -> [Int] {
        processors.reduce(ids) { $1.addingSpecialTokens($0) }
    }

    var specialTokenCount: Int { processors.reduce(0) { $0 + $1.specialTokenCount } }
}
