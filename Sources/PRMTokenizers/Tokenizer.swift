import Foundation
import PRMCore

/// A tokenizer loaded from a Hugging Face `tokenizer.json`; its ids equal those of the
/// `tokenizers` library for the same file (without the file's truncation and padding).
public protocol Tokenizer: Sendable {
    /// Token ids for `text`; with `addSpecialTokens` the post-processor's single-sequence
    /// template is applied ([CLS] … [SEP] for BERT).
    func encode(_ text: String, addSpecialTokens: Bool) -> [Int]
    /// `encode` for each text, in parallel over the texts.
    func encodeBatch(_ texts: [String], addSpecialTokens: Bool) -> [[Int]]
    /// The text for `ids`, through the file's decoder. Ids outside the vocabulary are skipped, as
    /// the reference does.
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String
    /// Applies the single-sequence post-processor template to already-encoded ids (used after
    /// truncation).
    func addingSpecialTokens(_ ids: [Int]) -> [Int]
    /// How many ids `addingSpecialTokens` adds (2 for BERT).
    var specialTokensPerSequence: Int { get }
    /// The size of the id space: one past the largest id of the vocabulary and added tokens
    /// (the reference's `get_vocab_size(with_added_tokens=True)` when ids are dense).
    var vocabularySize: Int { get }
    /// The id of a token, added tokens first, then the model's vocabulary.
    func id(of token: String) -> Int?
    /// The padding id: the file's `padding.pad_token` (or `pad_id`), else `[PAD]` for a
    /// WordPiece vocabulary that has it, else nil.
    var padTokenID: Int? { get }
}

extension Tokenizer {
    /// `encode` truncated to at most `maxLength` ids, special tokens included: the content is cut
    /// to `maxLength - specialTokensPerSequence` first, as the reference's single-sequence
    /// truncation does.
    public func encode(_ text: String, addSpecialTokens: Bool, maxLength: Int) -> [Int] {
        let content = encode(text, addSpecialTokens: false)
        guard addSpecialTokens else { return Array(content.prefix(max(0, maxLength))) }
        let room = max(0, maxLength - specialTokensPerSequence)
        return addingSpecialTokens(Array(content.prefix(room)))
    }
}

public enum TokenizerLoader {
    /// Loads `tokenizer.json`. Throws a `TokenizerError` naming the file and the problem: the
    /// file is missing or not JSON, `model` is missing, a section's type is not supported, the
    /// vocabulary lacks the unk token, the merges are malformed.
    public static func load(contentsOf url: URL) throws -> any Tokenizer {
        let file = url.path
        guard FileManager.default.fileExists(atPath: file) else {
            throw TokenizerError(.fileMissing, file: file, problem: "file not found")
        }
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw TokenizerError(.unreadable, file: file, problem: "cannot read: \(error.localizedDescription)")
        }
        return try load(data: data, origin: file)
    }

    /// Loads the bytes of a `tokenizer.json` (one a GGUF file's metadata was written out as);
    /// errors name `origin`.
    public static func load(data: Data, origin file: String) throws -> any Tokenizer {
        do {
            let sections = try JSONDecoder().decode(TokenizerFile.self, from: data)
            return try PretrainedTokenizer(sections)
        } catch let problem as ConfigProblem {
            throw TokenizerError(problem.kind, file: file, problem: problem.message)
        } catch let error as DecodingError {
            let problem = DecodingProblem(error)
            var message = problem.message
            let kind: TokenizerError.Kind = switch problem.kind {
                case .missingKey: .missingKey
                case .invalidValue: .invalidValue
                case .notJSON: .notJSON
            }
            if kind == .notJSON, let detail = syntaxErrorDetail(data) { message = "not valid JSON: \(detail)" }
            throw TokenizerError(kind, file: file, problem: message)
        } catch {
            // Nothing else is thrown today; keep the promise that every failure names the file.
            throw TokenizerError(.invalidValue, file: file, problem: "\(error)")
        }
    }

    /// JSONDecoder only says "not valid JSON"; JSONSerialization says where ("Invalid value
    /// around character 2.").
    private static func syntaxErrorDetail(_ data: Data) -> String? {
        do {
            _ = try JSONSerialization.jsonObject(with: data)
            return nil
        } catch {
            return (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
        }
    }
}

/// The sections of `tokenizer.json` this module reads, with Hugging Face's keys. `truncation`
/// is ignored: callers truncate ids themselves.
struct TokenizerFile: Decodable {
    let addedTokens: [AddedToken]
    let normalizer: (any Normalizer)?
    let preTokenizer: (any PreTokenizer)?
    let model: any TokenModel
    let postProcessor: (any PostProcessor)?
    let decoder: (any TokenDecoder)?
    let padding: Padding?

    struct Padding: Decodable {
        let padID: Int?
        let padToken: String?
        enum CodingKeys: String, CodingKey {
            case padID = "pad_id"
            case padToken = "pad_token"
        }
    }

    private enum CodingKeys: String, CodingKey {
        case addedTokens = "added_tokens"
        case normalizer
        case preTokenizer = "pre_tokenizer"
        case model
        case postProcessor = "post_processor"
        case decoder
        case padding
    }

    /// Sections built by hand (a GGUF file's vocabulary) rather than decoded.
    init(addedTokens: [AddedToken], preTokenizer: (any PreTokenizer)?, model: any TokenModel, decoder: (any TokenDecoder)?) {
        self.addedTokens = addedTokens
        normalizer = nil
        self.preTokenizer = preTokenizer
        self.model = model
        postProcessor = nil
        self.decoder = decoder
        padding = nil
    }

    init(from decoder: any Decoder) throws {
        let keys = try decoder.container(keyedBy: CodingKeys.self)
        guard keys.contains(.model), try !keys.decodeNil(forKey: .model) else {
            throw ConfigProblem(.missingKey, "missing field 'model'")
        }
        model = try Self.decodeModel(keys.superDecoder(forKey: .model))
        addedTokens = try keys.decodeIfPresent([AddedToken].self, forKey: .addedTokens) ?? []
        normalizer = try keys.decodeIfPresent(Sections.normalizer, forKey: .normalizer)
        preTokenizer = try keys.decodeIfPresent(Sections.preTokenizer, forKey: .preTokenizer)
        postProcessor = try keys.decodeIfPresent(Sections.postProcessor, forKey: .postProcessor)
        self.decoder = try keys.decodeIfPresent(Sections.decoder, forKey: .decoder)
        padding = try keys.decodeIfPresent(Padding.self, forKey: .padding)
    }

    private enum ModelKeys: String, CodingKey { case merges, maxInputCharsPerWord = "max_input_chars_per_word" }

    /// The reference accepts a model without `type` (older files); its keys tell which it is.
    private static func decodeModel(_ decoder: any Decoder) throws -> any TokenModel {
        let keys = try decoder.container(keyedBy: ModelKeys.self)
        let inferred = keys.contains(.merges) ? "BPE" : keys.contains(.maxInputCharsPerWord) ? "WordPiece" : nil
        return try Sections.model.make(from: decoder, inferredType: inferred)
    }
}
