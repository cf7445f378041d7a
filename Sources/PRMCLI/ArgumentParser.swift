/// A small declarative argument parser for `prm`'s subcommands.
///
/// SwiftPM cannot fetch swift-argument-parser in our build environment, so this covers the
/// subset we use: long and short options, flags, single and repeatable values, positionals,
/// `--`, and generated help. Commands declare a `CommandSpec`; `CommandSpec.parse` turns the
/// command line into `ParsedArguments`, whose typed getters throw a usage `CLIError` naming the
/// option when a value does not convert.
///
/// Rules (the tests in ArgumentParserTests pin each one):
/// - `--name value`, `--name=value` and `-x value`; flags take no value (`--flag=x` is an error).
/// - A value option takes the next token unless it looks like an option. A token that starts
///   with `-` but parses as a number (`-1`, `-0.5`, `-1e-3`) is a value, so `--alpha -1` works;
///   `-` alone (stdin by convention) is a value too. Other dash-led values need `--name=-x`.
/// - `--` ends options; everything after it is positional.
/// - `-h`/`--help` anywhere before `--` asks for help, whatever else is on the line.
/// - Unknown options, missing values, a non-repeatable option given twice, missing required
///   positionals and surplus positionals are usage `CLIError`s.

// MARK: - Specs

/// One option of a command. `name` is the long name without `--`.
public struct OptionSpec: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Present or absent; takes no value.
        case flag
        /// Takes one value, given at most once. The placeholder names it in help: `--epochs <n>`.
        case value(placeholder: String)
        /// Takes one value per occurrence and may be given any number of times.
        case repeated(placeholder: String)
    }

    public var name: String
    public var short: Character?
    public var kind: Kind
    public var help: String
    /// Shown in help as "(default: …)" and returned by the getters when the option is absent,
    /// so the help text and the behaviour cannot drift apart.
    public var defaultValue: String?

    public init(name: String, short: Character? = nil, kind: Kind, help: String, defaultValue: String? = nil) {
        self.name = name
        self.short = short
        self.kind = kind
        self.help = help
        self.defaultValue = defaultValue
    }

    public static func flag(_ name: String, short: Character? = nil, help: String) -> OptionSpec {
        OptionSpec(name: name, short: short, kind: .flag, help: help)
    }

    public static func value(
        _ name: String, short: Character? = nil, placeholder: String, help: String, default defaultValue: String? = nil
    ) -> OptionSpec {
        OptionSpec(name: name, short: short, kind: .value(placeholder: placeholder), help: help, defaultValue: defaultValue)
    }

    public static func repeated(_ name: String, short: Character? = nil, placeholder: String, help: String) -> OptionSpec {
        OptionSpec(name: name, short: short, kind: .repeated(placeholder: placeholder), help: help)
    }

    var takesValue: Bool {
        if case .flag = kind { return false }
        return true
    }

    var placeholder: String? {
        switch kind {
        case .flag: return nil
        case .value(let placeholder), .repeated(let placeholder): return placeholder
        }
    }
}

/// One positional argument. Required ones come first, then optional ones, then at most one
/// variadic one (zero or more values), so assignment from the left is unambiguous.
public struct PositionalSpec: Sendable, Equatable {
    public enum Arity: Sendable, Equatable { case required, optional, variadic }

    public var name: String
    public var help: String
    public var arity: Arity

    public init(name: String, help: String, arity: Arity = .required) {
        self.name = name
        self.help = help
        self.arity = arity
    }

    public static func required(_ name: String, help: String) -> PositionalSpec { .init(name: name, help: help, arity: .required) }
    public static func optional(_ name: String, help: String) -> PositionalSpec { .init(name: name, help: help, arity: .optional) }
    public static func variadic(_ name: String, help: String) -> PositionalSpec { .init(name: name, help: help, arity: .variadic) }

    /// How the argument appears in usage lines: `<data>`, `[<model>]`, `[<files>...]`.
    var usageToken: String {
        switch arity {
        case .required: return "<\(name)>"
        case .optional: return "[<\(name)>]"
        case .variadic: return "[<\(name)>...]"
        }
    }
}

/// A subcommand's declaration: everything the parser and the help text need.
public struct CommandSpec: Sendable, Equatable {
    public var name: String
    /// One line, shown in `prm`'s command list and under the usage line of the command's help.
    public var abstract: String
    /// A paragraph (examples welcome) printed verbatim at the end of the help.
    public var discussion: String
    public var options: [OptionSpec]
    public var positionals: [PositionalSpec]

    public init(name: String, abstract: String, discussion: String = "", options: [OptionSpec] = [], positionals: [PositionalSpec] = []) {
        self.name = name
        self.abstract = abstract
        self.discussion = discussion
        self.options = options
        self.positionals = positionals
    }

    public func option(named name: String) -> OptionSpec? { options.first { $0.name == name } }
    public func option(short: Character) -> OptionSpec? { options.first { $0.short == short } }

    /// Mistakes in the declaration itself (duplicate names, a variadic positional that is not
    /// last, …). The parser assumes a valid spec; a test runs this over every registered command
    /// so a bad declaration fails CI rather than confusing a user.
    public func problems() -> [String] {
        var found: [String] = []
        if name.isEmpty || name.hasPrefix("-") || name.contains(where: \.isWhitespace) || name == "help" {
            found.append("command name '\(name)' must be a non-empty word, not starting with '-', and not 'help'")
        }
        if abstract.contains("\n") { found.append("\(name): abstract must be one line") }
        var longNames: Set<String> = ["help"]
        var shortNames: Set<Character> = ["h"]
        for option in options {
            if option.name.isEmpty || option.name.hasPrefix("-") || option.name.contains("=")
                || option.name.contains(where: \.isWhitespace) {
                found.append("\(name): option name '\(option.name)' must be a word without leading '-' or '='")
            }
            if !longNames.insert(option.name).inserted {
                found.append("\(name): option --\(option.name) is declared twice (or clashes with --help)")
            }
            if let short = option.short {
                // Digits are reserved so that `-1` is always a negative number, never an option.
                if !short.isLetter { found.append("\(name): short option -\(short) must be a letter") }
                if !shortNames.insert(short).inserted {
                    found.append("\(name): short option -\(short) is declared twice (or clashes with -h)")
                }
            }
            if case .flag = option.kind, option.defaultValue != nil {
                found.append("\(name): flag --\(option.name) cannot have a default value")
            }
            if let placeholder = option.placeholder, placeholder.isEmpty {
                found.append("\(name): option --\(option.name) needs a placeholder")
            }
        }
        var positionalNames: Set<String> = []
        var rank = 0  // required = 0, optional = 1, variadic = 2; must not decrease
        for (index, positional) in positionals.enumerated() {
            if !positionalNames.insert(positional.name).inserted {
                found.append("\(name): positional <\(positional.name)> is declared twice")
            }
            let thisRank: Int
            switch positional.arity {
            case .required: thisRank = 0
            case .optional: thisRank = 1
            case .variadic: thisRank = 2
            }
            if thisRank < rank {
                found.append("\(name): positional <\(positional.name)> must come before optional and variadic ones")
            }
            if positional.arity == .variadic && index != positionals.count - 1 {
                found.append("\(name): variadic positional <\(positional.name)> must be last")
            }
            rank = max(rank, thisRank)
        }
        return found
    }
}

// MARK: - Parsing

/// What the command line asked for.
public enum ParseResult: Sendable, Equatable {
    /// `-h` or `--help` appeared: print `spec.helpText()` and exit 0.
    case help
    case arguments(ParsedArguments)
}

extension CommandSpec {
    /// Parses the arguments that follow the command name.
    /// - Parameter program: the executable's name, used in usage lines.
    public func parse(_ arguments: [String], program: String = "prm") throws(CLIError) -> ParseResult {
        // Help wins over every other problem on the line ("prm train --bogus --help" shows help).
        // A value option never takes "-h"/"--help" as its value (they look like options), so
        // this pre-scan agrees with the main loop below.
        for token in arguments {
            if token == "--" { break }
            if token == "-h" || token == "--help" { return .help }
        }

        let usage = self.usage(program: program)
        func fail(_ message: String) -> CLIError { .usageError(message, usage: usage) }

        var values: [String: [String]] = [:]
        var flags: Set<String> = []
        var positionalValues: [String] = []
        var index = 0
        var optionsEnded = false

        while index < arguments.count {
            let token = arguments[index]
            index += 1
            if optionsEnded || !Self.looksLikeOption(token) {
                positionalValues.append(token)
                continue
            }
            if token == "--" {
                optionsEnded = true
                continue
            }

            let option: OptionSpec
            var inlineValue: String?
            if token.hasPrefix("--") {
                let body = token.dropFirst(2)
                let typedName: Substring
                if let equals = body.firstIndex(of: "=") {
                    typedName = body[..<equals]
                    inlineValue = String(body[body.index(after: equals)...])
                } else {
                    typedName = body
                }
                guard let found = self.option(named: String(typedName)) else {
                    throw fail(unknownOptionMessage("--\(typedName)"))
                }
                option = found
            } else {
                // "-x": exactly one letter after the dash. Bundles ("-vq") and attached values
                // ("-e5") are not supported; saying so beats guessing.
                guard token.count == 2, let short = token.last, let found = self.option(short: short) else {
                    throw fail(unknownOptionMessage(token))
                }
                option = found
            }

            let display = "--\(option.name)"
            switch option.kind {
            case .flag:
                if inlineValue != nil { throw fail("\(display) does not take a value") }
                if !flags.insert(option.name).inserted { throw fail("\(display) given more than once") }
            case .value, .repeated:
                let value: String
                if let inlineValue {
                    value = inlineValue
                } else if index < arguments.count, !Self.looksLikeOption(arguments[index]) {
                    value = arguments[index]
                    index += 1
                } else {
                    throw fail("missing value for \(display) <\(option.placeholder ?? "value")>")
                }
                if case .value = option.kind, values[option.name] != nil {
                    throw fail("\(display) given more than once")
                }
                values[option.name, default: []].append(value)
            }
        }

        // Assign positionals left to right: required, then optional, then the variadic rest.
        var named: [String: [String]] = [:]
        var next = 0
        for positional in positionals {
            switch positional.arity {
            case .required:
                guard next < positionalValues.count else {
                    throw fail("missing argument <\(positional.name)>")
                }
                named[positional.name] = [positionalValues[next]]
                next += 1
            case .optional:
                if next < positionalValues.count {
                    named[positional.name] = [positionalValues[next]]
                    next += 1
                }
            case .variadic:
                named[positional.name] = Array(positionalValues[next...])
                next = positionalValues.count
            }
        }
        if next < positionalValues.count {
            throw fail("unexpected argument '\(positionalValues[next])'")
        }

        return .arguments(ParsedArguments(
            spec: self, usage: usage, values: values, flags: flags,
            positionals: positionalValues, namedPositionals: named
        ))
    }

    /// True for tokens the parser treats as options: `--`, `--name…`, `-x…`; false for `-`,
    /// plain words and negative numbers, which are values.
    static func looksLikeOption(_ token: String) -> Bool {
        guard token.hasPrefix("-"), token.count >= 2 else { return false }
        if token == "--" { return true }
        return Double(token) == nil
    }

    private func unknownOptionMessage(_ typed: String) -> String {
        let candidates = options.map { "--\($0.name)" } + ["--help"]
        if let suggestion = closestMatch(to: typed, among: candidates) {
            return "unknown option '\(typed)' (did you mean '\(suggestion)'?)"
        }
        return "unknown option '\(typed)'"
    }
}

/// The nearest candidate by edit distance, if it is close enough to be a likely typo
/// (at most a third of the typed length, and at most 2 edits).
func closestMatch(to typed: String, among candidates: [String]) -> String? {
    let limit = min(2, max(1, typed.count / 3))
    var best: (candidate: String, distance: Int)?
    for candidate in candidates {
        let distance = editDistance(typed, candidate)
        if distance <= limit, distance < (best?.distance ?? .max) { best = (candidate, distance) }
    }
    return best?.candidate
}

/// Edit distance over Characters counting insertions, deletions, substitutions and swaps of
/// two neighbours (optimal string alignment), so the commonest typo, "trian" for "train", is
/// one edit rather than two.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    // d[i][j]: distance between a's first i and b's first j characters.
    var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { d[i][0] = i }
    for j in 0...b.count { d[0][j] = j }
    for i in 1...a.count {
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
            }
        }
    }
    return d[a.count][b.count]
}

// MARK: - Parsed arguments

/// The parsed command line. Getters take the option's long name (without `--`); asking for an
/// undeclared option, or for a value from a flag, is a programming error in the command and
/// traps with a message naming it (the command's own tests catch it).
public struct ParsedArguments: Sendable, Equatable {
    public let spec: CommandSpec
    /// The command's usage line, carried into every usage CLIError the getters throw.
    public let usage: String
    private let values: [String: [String]]
    private let flags: Set<String>
    /// All positional arguments in order.
    public let positionals: [String]
    private let namedPositionals: [String: [String]]

    init(spec: CommandSpec, usage: String, values: [String: [String]], flags: Set<String>,
         positionals: [String], namedPositionals: [String: [String]]) {
        self.spec = spec
        self.usage = usage
        self.values = values
        self.flags = flags
        self.positionals = positionals
        self.namedPositionals = namedPositionals
    }

    /// A usage CLIError carrying this command's usage line, for checks the parser cannot express
    /// ("--lr must be positive", "--a and --b cannot be combined").
    public func usageError(_ message: String) -> CLIError { .usageError(message, usage: usage) }

    public func flag(_ name: String) -> Bool {
        let option = declared(name)
        precondition(!option.takesValue, "--\(name) takes a value; read it with string/int/double, not flag")
        return flags.contains(name)
    }

    /// Whether the option appeared on the command line (as opposed to falling back to its default).
    public func isSet(_ name: String) -> Bool {
        _ = declared(name)
        return flags.contains(name) || values[name] != nil
    }

    /// The option's value, else its declared default, else nil.
    public func string(_ name: String) -> String? {
        let option = valueOption(name)
        return values[name]?.last ?? option.defaultValue
    }

    /// The option's value, else its declared default, else `defaultValue`.
    public func string(_ name: String, default defaultValue: String) -> String {
        string(name) ?? defaultValue
    }

    /// Every value of a repeated option in command-line order (empty when absent); for a
    /// single-value option, its value or default as a one-element array.
    public func strings(_ name: String) -> [String] {
        _ = valueOption(name)
        if let given = values[name] { return given }
        return string(name).map { [$0] } ?? []
    }

    public func int(_ name: String) throws(CLIError) -> Int? {
        guard let text = string(name) else { return nil }
        guard let value = Int(text) else { throw usageError("--\(name) expects an integer, got '\(text)'") }
        return value
    }

    public func int(_ name: String, default defaultValue: Int) throws(CLIError) -> Int {
        try int(name) ?? defaultValue
    }

    /// A finite number. NaN and infinity are refused: as hyperparameters they only ever poison a run.
    public func double(_ name: String) throws(CLIError) -> Double? {
        guard let text = string(name) else { return nil }
        guard let value = Double(text), value.isFinite else {
            throw usageError("--\(name) expects a number, got '\(text)'")
        }
        return value
    }

    public func double(_ name: String, default defaultValue: Double) throws(CLIError) -> Double {
        try double(name) ?? defaultValue
    }

    /// The option's value (or declared default); a usage CLIError when neither exists.
    public func require(_ name: String) throws(CLIError) -> String {
        guard let value = string(name) else { throw usageError("missing required option --\(name)") }
        return value
    }

    /// The value of a required or optional positional, by its declared name.
    public func positional(_ name: String) -> String? {
        precondition(spec.positionals.contains { $0.name == name }, "positional <\(name)> is not declared in '\(spec.name)'")
        return namedPositionals[name]?.first
    }

    /// The values of a variadic positional (or the single value of another), by its declared name.
    public func positionalList(_ name: String) -> [String] {
        precondition(spec.positionals.contains { $0.name == name }, "positional <\(name)> is not declared in '\(spec.name)'")
        return namedPositionals[name] ?? []
    }

    private func declared(_ name: String) -> OptionSpec {
        guard let option = spec.option(named: name) else {
            preconditionFailure("option --\(name) is not declared in command '\(spec.name)'")
        }
        return option
    }

    private func valueOption(_ name: String) -> OptionSpec {
        let option = declared(name)
        precondition(option.takesValue, "--\(name) is a flag; read it with flag(_:)")
        return option
    }
}

// MARK: - Help

extension CommandSpec {
    /// "prm train [options] <data> [<files>...]". Options are summarised as `[options]`; the
    /// help text lists them, and one line stays readable as commands grow.
    public func usage(program: String = "prm") -> String {
        var parts = ["\(program) \(name)"]
        if !options.isEmpty { parts.append("[options]") }
        parts += positionals.map(\.usageToken)
        return parts.joined(separator: " ")
    }

    /// The full help: usage, abstract, arguments, options (with placeholders and defaults),
    /// then the discussion verbatim. Ends with a newline.
    public func helpText(program: String = "prm") -> String {
        let positionalRows: [(String, String)] = positionals.map { positional in
            (positional.arity == .variadic ? "<\(positional.name)>..." : "<\(positional.name)>", positional.help)
        }
        var optionRows: [(String, String)] = options.map { option in
            var left = option.short.map { "-\($0), " } ?? "    "
            left += "--\(option.name)"
            if let placeholder = option.placeholder { left += " <\(placeholder)>" }
            var notes: [String] = []
            if case .repeated = option.kind { notes.append("(repeatable)") }
            if let defaultValue = option.defaultValue { notes.append("(default: \(defaultValue))") }
            return (left, ([option.help] + notes).filter { !$0.isEmpty }.joined(separator: " "))
        }
        optionRows.append(("-h, --help", "Show this help and exit."))
        // One help column for both tables, so arguments and options line up.
        let column = HelpFormatter.column(for: positionalRows + optionRows)

        var out = "usage: \(usage(program: program))\n\n\(abstract)\n"
        if !positionalRows.isEmpty { out += "\nArguments:\n" + HelpFormatter.table(positionalRows, column: column) }
        out += "\nOptions:\n" + HelpFormatter.table(optionRows, column: column)
        let discussion = discussion.trimmingTrailingNewlines()
        if !discussion.isEmpty { out += "\n\(discussion)\n" }
        return out
    }
}

/// Two-column help tables, word-wrapped to 80 columns with a hanging indent.
enum HelpFormatter {
    static let width = 80
    static let maxLeftColumn = 28

    /// Where the help column starts: two spaces of indent, the widest left part, two spaces of
    /// gap; capped so one long option does not push every help text to the right margin.
    static func column(for rows: [(String, String)]) -> Int {
        min(maxLeftColumn, (rows.map(\.0.count).max() ?? 0) + 4)
    }

    /// Rows as "  left  help", the help starting at `column`; a left part too wide for the
    /// column gets its help on the following line.
    static func table(_ rows: [(String, String)], column: Int? = nil) -> String {
        let column = column ?? self.column(for: rows)
        var out = ""
        for (left, help) in rows {
            let lead = "  " + left
            let lines = wrap(help, width: width - column)
            if lead.count + 2 > column || lines.isEmpty {
                out += lead + "\n"
                for line in lines { out += String(repeating: " ", count: column) + line + "\n" }
            } else {
                out += lead.padding(to: column) + lines[0] + "\n"
                for line in lines.dropFirst() { out += String(repeating: " ", count: column) + line + "\n" }
            }
        }
        return out
    }

    /// Greedy word wrap; a word longer than `width` gets a line of its own.
    static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = []
        var line = ""
        for word in text.split(whereSeparator: \.isWhitespace) {
            if line.isEmpty {
                line = String(word)
            } else if line.count + 1 + word.count <= width {
                line += " " + word
            } else {
                lines.append(line)
                line = String(word)
            }
        }
        if !line.isEmpty { lines.append(line) }
        return lines
    }
}

extension String {
    func padding(to length: Int) -> String {
        count >= length ? self : self + String(repeating: " ", count: length - count)
    }

    func trimmingTrailingNewlines() -> String {
        var text = Substring(self)
        while let last = text.last, last.isNewline { text = text.dropLast() }
        return String(text)
    }
}
