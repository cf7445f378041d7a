import Foundation

/// Everything that can go wrong reading a GGUF file. The description is one line naming the
/// file, the metadata key or tensor when there is one, and the problem, e.g.
/// `m.gguf: tensor 'blk.0.attn_q.weight': bytes 96..1248 end past the file's 1024 bytes (truncated?)`.
public struct GGUFError: Error, CustomStringConvertible, Sendable {
    /// Which check failed; lets callers and tests tell problems apart without parsing text.
    public enum Kind: String, Sendable {
        /// The file could not be opened or mapped.
        case io
        /// The file ends inside the header, a metadata value or a tensor's data.
        case truncated
        /// The first four bytes are not "GGUF".
        case badMagic
        /// A format version other than 2 or 3.
        case unsupportedVersion
        /// A metadata value type outside the format's thirteen, or a string that is not UTF-8.
        case badValue
        /// A tensor type this reader does not dequantize.
        case unsupportedType
        /// A tensor's dimensions are not positive, or its rows do not fill whole blocks.
        case badShape
        /// A tensor's data lies outside the file or is not aligned.
        case outOfBounds
        /// A metadata key or tensor that the caller needs is absent.
        case missing
        /// A metadata value of another type than the caller needs.
        case wrongType
    }

    public let path: String
    /// The metadata key or tensor concerned, already quoted ("key 'llama.block_count'").
    public let subject: String?
    public let kind: Kind
    public let problem: String

    public init(path: String, subject: String? = nil, kind: Kind, problem: String) {
        self.path = path
        self.subject = subject
        self.kind = kind
        self.problem = problem
    }

    public var description: String {
        if let subject { return "\(path): \(subject): \(problem)" }
        return "\(path): \(problem)"
    }
}
