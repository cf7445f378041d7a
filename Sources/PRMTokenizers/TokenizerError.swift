import Foundation

/// Everything that can go wrong loading a `tokenizer.json`, as one line naming the file:
/// `".../tokenizer.json: unsupported model type 'Unigram'"`.
public struct TokenizerError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        case fileMissing
        case unreadable
        case notJSON
        /// A required key is absent (`model`, `model.vocab`, ...).
        case missingKey
        /// A value has the wrong JSON type or an invalid value.
        case invalidValue
        /// A section's `type` (model, normalizer, pre-tokenizer, post-processor, decoder) that
        /// this module does not implement.
        case unsupported
        /// The vocabulary lacks a token the configuration names (the unk token, a special token).
        case missingToken
        case badMerges
    }

    public let kind: Kind
    /// The file's path as given to the loader.
    public let file: String
    /// What is wrong, with the key and the offending value.
    public let problem: String

    public init(_ kind: Kind, file: String, problem: String) {
        self.kind = kind
        self.file = file
        self.problem = problem
    }

    public var description: String { "\(file): \(problem)" }
}

/// A problem found while building a section, before the file name is known; the loader turns
/// it into a `TokenizerError`.
struct ConfigProblem: Error {
    let kind: TokenizerError.Kind
    let message: String
    init(_ kind: TokenizerError.Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}
