import Foundation

/// Where `prm embed` reads its texts: its arguments, a JSONL file or stdin (`--input`), or else
/// stdin with one text per line. Texts are handed out a window at a time and files are read line
/// by line, so memory does not grow with the input; a bad line is reported (file and line) when
/// its window is read.
final class TextSource {
    private enum Origin {
        case arguments([String])
        case jsonl(LineReader, field: String)
        case lines(LineReader)
    }

    private let origin: Origin
    private var nextArgument = 0
    /// The number of texts when known in advance (arguments), else 0.
    let knownCount: Int

    init(_ arguments: ParsedArguments) throws {
        let positional = arguments.positionalList("text")
        if let input = arguments.string("input") {
            guard positional.isEmpty else { throw arguments.usageError("give texts as arguments or with --input, not both") }
            origin = .jsonl(try LineReader(path: input), field: arguments.string("field", default: "text"))
            knownCount = 0
        } else if !positional.isEmpty {
            origin = .arguments(positional)
            knownCount = positional.count
        } else {
            origin = .lines(try LineReader(path: "-"))
            knownCount = 0
        }
    }

    /// Up to `count` more texts in input order; empty once the input is exhausted.
    func next(_ count: Int) throws -> [String] {
        var texts: [String] = []
        switch origin {
        case .arguments(let all):
            let end = min(all.count, nextArgument + count)
            texts = Array(all[nextArgument..<end])
            nextArgument = end
        case .jsonl(let reader, let field):
            while texts.count < count, let raw = try reader.next() {
                let value = try JSONLines.value(raw, name: reader.name, line: reader.lineNumber)
                texts.append(try JSONLines.text(value, name: reader.name, line: reader.lineNumber, field: field))
            }
        case .lines(let reader):
            while texts.count < count, let raw = try reader.next() {
                guard let text = String(validating: raw, as: UTF8.self) else {
                    throw CLIError("\(reader.name):\(reader.lineNumber): invalid UTF-8")
                }
                texts.append(text)
            }
        }
        return texts
    }
}
