import Foundation
import PRMCore

/// A `prm` subcommand: its declaration and what it does.
///
/// `SendableMetatype` lets `CLI.commands`, a static array of metatypes, be shared safely under
/// Swift 6 strict concurrency.
public protocol Subcommand: SendableMetatype {
    static var spec: CommandSpec { get }
    /// Runs the command; the result is the process's exit status. Throw a usage `CLIError`
    /// (`arguments.usageError("...")`) for bad input the parser could not catch: it
    /// exits 2 with the usage line. Any other error exits 1 with its description.
    /// Results go to `output` (stdout, which `CLI.run` injects so tests can read them); logs and
    /// progress go to stderr.
    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output: inout Out) throws -> Int32
}

/// Entry point of the `prm` executable: dispatches to subcommands and owns exit statuses.
///
/// Exit statuses: 0 success (and help), 1 a command failed, 2 the command line was wrong.
public enum CLI {
    public static let program = "prm"
    public static let version = PRMVersion.current

    /// The product's subcommands, in the order the overview lists them; add new ones here. `bench`
    /// is not among them: it lives in PRMBench, which builds on this module, so the `prm`
    /// executable (main.swift) appends it.
    public static let commands: [any Subcommand.Type] = [
        TrainCommand.self, EvalCommand.self, AdaptCommand.self, ScoreCommand.self, ServeCommand.self, ProxyCommand.self, KeygenCommand.self,
        EmbedCommand.self, ProbeCommand.self, SftCommand.self, GenerateCommand.self, PpoCommand.self,
    ]

    /// Called by `main.swift` with the arguments after the program name and every command the
    /// executable registers.
    public static func main(_ arguments: [String], commands: [any Subcommand.Type]) -> Int32 {
        var out = StandardOutput()
        var err = StandardError()
        let status = run(arguments, commands: commands, stdout: &out, stderr: &err)
        // A rank of an `mpirun` job finalizes MPI, or on failure aborts the job's other ranks.
        Ranks.leave(status: status)
        return status
    }

    /// `main` with the command list and the output streams injected, so tests can assert the
    /// exact exit status and text.
    public static func run<Out: TextOutputStream, Err: TextOutputStream>(
        _ arguments: [String], commands: [any Subcommand.Type], stdout: inout Out, stderr: inout Err
    ) -> Int32 {
        var arguments = arguments[...]
        // Global options come before the command: they apply to whatever it computes.
        var backend: Compute.Backend?
        while let first = arguments.first, first == "--backend" || first.hasPrefix("--backend=") {
            let value: String
            if first == "--backend" {
                guard arguments.count > 1 else {
                    stderr.write("\(program): --backend needs a value (\(Compute.Backend.names))\nusage: \(usage)\n")
                    return 2
                }
                value = arguments[arguments.startIndex + 1]
                arguments = arguments.dropFirst(2)
            } else {
                value = String(first.dropFirst("--backend=".count))
                arguments = arguments.dropFirst()
            }
            guard let chosen = Compute.Backend(rawValue: value) else {
                stderr.write("\(program): unknown backend '\(value)' (available: \(Compute.Backend.names))\nusage: \(usage)\n")
                return 2
            }
            backend = chosen
        }
        guard let backend else { return dispatch(Array(arguments), commands: commands, stdout: &stdout, stderr: &stderr) }
        // Chosen for this run only, so in-process callers (tests) get the previous backend back.
        return Compute.with(backend: backend) { dispatch(Array(arguments), commands: commands, stdout: &stdout, stderr: &stderr) }
    }

    /// The overview's usage line.
    static let usage = "\(program) [--backend NAME] <command> [options]"

    private static func dispatch<Out: TextOutputStream, Err: TextOutputStream>(
        _ arguments: [String], commands: [any Subcommand.Type], stdout: inout Out, stderr: inout Err
    ) -> Int32 {
        guard let first = arguments.first else {
            stdout.write(overview(commands: commands))
            return 0
        }
        let rest = Array(arguments.dropFirst())

        switch first {
        case "-h", "--help", "help":
            // `prm help CMD` and `prm --help CMD` are `prm CMD --help`.
            guard let name = rest.first else {
                stdout.write(overview(commands: commands))
                return 0
            }
            if rest.count > 1 {
                stderr.write("\(program) help: unexpected argument '\(rest[1])'\nusage: \(program) help [<command>]\n")
                return 2
            }
            guard let command = commands.first(where: { $0.spec.name == name }) else {
                stderr.write(unknownCommand(name, commands: commands))
                return 2
            }
            stdout.write(command.spec.helpText(program: program))
            return 0

        case "--version":
            if let extra = rest.first {
                stderr.write("\(program): unexpected argument '\(extra)' after --version\n")
                return 2
            }
            stdout.write("\(program) \(version)\n")
            return 0

        default:
            if CommandSpec.looksLikeOption(first) {
                stderr.write("\(program): unknown option '\(first)'\nRun '\(program) --help' for usage.\n")
                return 2
            }
            guard let command = commands.first(where: { $0.spec.name == first }) else {
                stderr.write(unknownCommand(first, commands: commands))
                return 2
            }
            return runCommand(command, rest, stdout: &stdout, stderr: &stderr)
        }
    }

    private static func runCommand<Out: TextOutputStream, Err: TextOutputStream>(
        _ command: any Subcommand.Type, _ arguments: [String], stdout: inout Out, stderr: inout Err
    ) -> Int32 {
        let spec = command.spec
        let prefix = "\(program) \(spec.name)"
        do {
            switch try spec.parse(arguments, program: program) {
            case .help:
                stdout.write(spec.helpText(program: program))
                return 0
            case .arguments(let parsed):
                return try command.run(parsed, output: &stdout)
            }
        } catch let error as CLIError where error.kind == .usage {
            let usage = error.usage ?? spec.usage(program: program)
            stderr.write("\(prefix): \(error.message)\nusage: \(usage)\n")
            return 2
        } catch {
            stderr.write("\(prefix): error: \(describe(error))\n")
            return 1
        }
    }

    /// `prm`'s own help: the command list with abstracts.
    public static func overview(commands: [any Subcommand.Type]) -> String {
        var out = "\(program) \(version): personalized reward models\n\n"
        out += "usage: \(usage)\n"
        out += "       \(program) help <command>\n"
        let commandRows = commands.map { ($0.spec.name, $0.spec.abstract) }
        let optionRows = [("-h, --help", "Show this overview and exit."), ("    --version", "Print the version and exit."),
                          ("    --backend NAME", "Matrix library for every sgemm: \(Compute.Backend.names.replacingOccurrences(of: ", ", with: " or ")) "
                           + "(default \(Compute.defaultBackend); the PRM_BACKEND environment variable sets it too).")]
        // One help column for both tables, so commands and options line up.
        let column = HelpFormatter.column(for: commandRows + optionRows)
        out += "\nCommands:\n"
        out += commandRows.isEmpty ? "  (none registered)\n" : HelpFormatter.table(commandRows, column: column)
        out += "\nOptions:\n" + HelpFormatter.table(optionRows, column: column)
        out += "\nRun '\(program) help <command>' or '\(program) <command> --help' for a command's options.\n"
        return out
    }

    private static func unknownCommand(_ name: String, commands: [any Subcommand.Type]) -> String {
        var out = "\(program): unknown command '\(name)'"
        // A closure, not `map(\.spec.name)`: a key path through an existential metatype crashes
        // the Swift 6.3.1 compiler in SILGen.
        if let suggestion = closestMatch(to: name, among: commands.map { $0.spec.name }) {
            out += " (did you mean '\(suggestion)'?)"
        }
        return out + "\nRun '\(program) --help' for a list of commands.\n"
    }

    /// One line describing a failure. Our errors are CustomStringConvertible with context, so
    /// their description is the message. Foundation's errors describe themselves as
    /// "Error Domain=… Code=… UserInfo={…}", so for those the localized text is used instead,
    /// with the file path when there is one.
    static func describe(_ error: any Error) -> String {
        let text: String
        if let cocoa = error as? CocoaError {
            text = cocoa.localizedDescription + (cocoa.filePath.map { " (\($0))" } ?? "")
        } else if type(of: error) is NSError.Type {
            text = error.localizedDescription
        } else {
            // Uses `description` when the error is CustomStringConvertible, else the value's
            // default rendering ("broken(code: 7)").
            text = String(describing: error)
        }
        return text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
            .joined(separator: " ")
    }
}

/// A `TextOutputStream` onto standard output, through the Swift runtime's buffered stdout so
/// it stays in order with a command's own `print` output.
public struct StandardOutput: TextOutputStream, Sendable {
    public init() {}
    public mutating func write(_ string: String) { print(string, terminator: "") }
}
