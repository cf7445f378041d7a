import Foundation
import XCTest
@testable import PRMCLI
import PRMCore
import PRMTraining

// MARK: - Fixtures

/// A spec with every kind of option and an optional positional, shaped like `prm train`.
private let trainSpec = CommandSpec(
    name: "train",
    abstract: "Train a reward model on preference pairs.",
    discussion: "Example:\n  prm train --epochs 3 --data train.jsonl models/minilm\n",
    options: [
        .value("epochs", short: "e", placeholder: "n", help: "Passes over the data.", default: "3"),
        .value("lr", placeholder: "rate", help: "Learning rate."),
        .value("alpha", placeholder: "x", help: "Mixing weight.", default: "0.5"),
        .value("data", short: "d", placeholder: "path", help: "Training data (JSONL)."),
        .repeated("tag", short: "t", placeholder: "name", help: "Tag the run."),
        .flag("verbose", short: "v", help: "Log every step."),
    ],
    positionals: [
        .required("model", help: "Model folder to start from."),
        .optional("output", help: "Where to write the checkpoint."),
    ]
)

/// A spec with a variadic positional, shaped like `prm score`.
private let scoreSpec = CommandSpec(
    name: "score",
    abstract: "Score texts.",
    options: [.value("batch", short: "b", placeholder: "n", help: "Batch size.")],
    positionals: [.variadic("texts", help: "Texts to score.")]
)

private func parse(_ spec: CommandSpec, _ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> ParsedArguments {
    switch try spec.parse(arguments) {
    case .arguments(let parsed): return parsed
    case .help:
        XCTFail("unexpected help for \(arguments)", file: file, line: line)
        throw CLIError.usageError("help")
    }
}

/// The usage CLIError message `body` throws, or nil when it does not throw one.
private func usageMessage(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch let error as CLIError where error.kind == .usage {
        return error.message
    } catch {
        return "unexpected \(type(of: error)): \(error)"
    }
}

private func parseMessage(_ spec: CommandSpec, _ arguments: [String]) -> String? {
    usageMessage { _ = try spec.parse(arguments) }
}

// MARK: - Parser

final class ArgumentParserTests: XCTestCase {
    func testLongValueForms() throws {
        XCTAssertEqual(try parse(trainSpec, ["m", "--epochs", "5"]).int("epochs"), 5)
        XCTAssertEqual(try parse(trainSpec, ["m", "--epochs=5"]).int("epochs"), 5)
        XCTAssertEqual(try parse(trainSpec, ["--data", "a.jsonl", "m"]).string("data"), "a.jsonl")
        // Everything after the first "=" is the value.
        XCTAssertEqual(try parse(trainSpec, ["m", "--data=k=v"]).string("data"), "k=v")
        XCTAssertEqual(try parse(trainSpec, ["m", "--data="]).string("data"), "")
    }

    func testShortValue() throws {
        let parsed = try parse(trainSpec, ["-e", "7", "-d", "x.jsonl", "m"])
        XCTAssertEqual(try parsed.int("epochs"), 7)
        XCTAssertEqual(parsed.string("data"), "x.jsonl")
        XCTAssertEqual(parsed.positionals, ["m"])
    }

    func testDefaultsComeFromTheSpec() throws {
        let parsed = try parse(trainSpec, ["m"])
        XCTAssertEqual(try parsed.int("epochs"), 3)
        XCTAssertFalse(parsed.isSet("epochs"))
        // The declared default (shown in help) wins over a call-site fallback.
        XCTAssertEqual(try parsed.int("epochs", default: 99), 3)
        XCTAssertEqual(try parsed.double("alpha"), 0.5)
        XCTAssertNil(parsed.string("lr"))
        XCTAssertNil(try parsed.double("lr"))
        XCTAssertEqual(try parsed.double("lr", default: 1e-3), 1e-3)
        XCTAssertEqual(parsed.string("data", default: "train.jsonl"), "train.jsonl")
        XCTAssertEqual(parsed.strings("tag"), [])
        XCTAssertEqual(parsed.strings("epochs"), ["3"])

        let given = try parse(trainSpec, ["m", "--epochs", "4"])
        XCTAssertTrue(given.isSet("epochs"))
        XCTAssertEqual(try given.int("epochs", default: 99), 4)
    }

    func testFlags() throws {
        XCTAssertTrue(try parse(trainSpec, ["m", "--verbose"]).flag("verbose"))
        XCTAssertTrue(try parse(trainSpec, ["-v", "m"]).flag("verbose"))
        let absent = try parse(trainSpec, ["m"])
        XCTAssertFalse(absent.flag("verbose"))
        XCTAssertFalse(absent.isSet("verbose"))
    }

    func testFlagRejectsAValue() {
        XCTAssertEqual(parseMessage(trainSpec, ["m", "--verbose=yes"]), "--verbose does not take a value")
        XCTAssertEqual(parseMessage(trainSpec, ["m", "--verbose="]), "--verbose does not take a value")
    }

    func testFlagTakesNoValueSoTheNextTokenIsPositional() throws {
        let parsed = try parse(trainSpec, ["--verbose", "m"])
        XCTAssertEqual(parsed.positional("model"), "m")
    }

    func testRepeatedNonRepeatableOptionIsAnError() {
        XCTAssertEqual(parseMessage(trainSpec, ["m", "--epochs", "1", "--epochs", "2"]), "--epochs given more than once")
        XCTAssertEqual(parseMessage(trainSpec, ["m", "-e", "1", "--epochs=2"]), "--epochs given more than once")
        XCTAssertEqual(parseMessage(trainSpec, ["m", "--verbose", "-v"]), "--verbose given more than once")
    }

    func testRepeatableOptionKeepsEveryValueInOrder() throws {
        let parsed = try parse(trainSpec, ["--tag", "a", "m", "-t", "b", "--tag=c"])
        XCTAssertEqual(parsed.strings("tag"), ["a", "b", "c"])
        XCTAssertEqual(parsed.string("tag"), "c")
        XCTAssertEqual(parsed.positionals, ["m"])
    }

    func testMissingValue() {
        XCTAssertEqual(parseMessage(trainSpec, ["m", "--epochs"]), "missing value for --epochs <n>")
        XCTAssertEqual(parseMessage(trainSpec, ["m", "-e"]), "missing value for --epochs <n>")
        // The next token looks like an option, so it is not taken as the value.
        XCTAssertEqual(parseMessage(trainSpec, ["--data", "--verbose", "m"]), "missing value for --data <path>")
        XCTAssertEqual(parseMessage(trainSpec, ["--data", "-v", "m"]), "missing value for --data <path>")
        XCTAssertEqual(parseMessage(trainSpec, ["m", "--data", "--", "x"]), "missing value for --data <path>")
        XCTAssertEqual(parseMessage(trainSpec, ["m", "--data", "-foo"]), "missing value for --data <path>")
    }

    func testDashLedValueNeedsEquals() throws {
        XCTAssertEqual(try parse(trainSpec, ["m", "--data=-foo"]).string("data"), "-foo")
    }

    func testNegativeNumbersAreValues() throws {
        XCTAssertEqual(try parse(trainSpec, ["m", "--alpha", "-1"]).double("alpha"), -1)
        XCTAssertEqual(try parse(trainSpec, ["m", "--alpha", "-0.25"]).double("alpha"), -0.25)
        XCTAssertEqual(try parse(trainSpec, ["m", "--alpha", "-1e-3"]).double("alpha"), -1e-3)
        XCTAssertEqual(try parse(trainSpec, ["m", "--alpha=-2"]).double("alpha"), -2)
        XCTAssertEqual(try parse(trainSpec, ["m", "-e", "-3"]).int("epochs"), -3)
        // …and positionals.
        XCTAssertEqual(try parse(scoreSpec, ["-5", "x", "-0.5"]).positionalList("texts"), ["-5", "x", "-0.5"])
    }

    func testSingleDashIsAValue() throws {
        XCTAssertEqual(try parse(trainSpec, ["--data", "-", "m"]).string("data"), "-")
        XCTAssertEqual(try parse(trainSpec, ["-"]).positional("model"), "-")
    }

    func testDoubleDashEndsOptions() throws {
        let parsed = try parse(scoreSpec, ["-b", "8", "--", "--batch", "-b", "-h", "--"])
        XCTAssertEqual(try parsed.int("batch"), 8)
        XCTAssertEqual(parsed.positionalList("texts"), ["--batch", "-b", "-h", "--"])
        XCTAssertEqual(try parse(trainSpec, ["--", "--verbose"]).positional("model"), "--verbose")
        XCTAssertFalse(try parse(trainSpec, ["--", "--verbose"]).flag("verbose"))
    }

    func testUnknownOptions() {
        XCTAssertEqual(parseMessage(trainSpec, ["m", "--bogus"]), "unknown option '--bogus'")
        XCTAssertEqual(parseMessage(trainSpec, ["m", "--bogus=1"]), "unknown option '--bogus'")
        XCTAssertEqual(parseMessage(trainSpec, ["m", "-x"]), "unknown option '-x'")
        // Bundled short flags and attached short values are not supported.
        XCTAssertEqual(parseMessage(trainSpec, ["m", "-ve"]), "unknown option '-ve'")
        XCTAssertEqual(parseMessage(trainSpec, ["m", "-e5"]), "unknown option '-e5'")
        XCTAssertEqual(parseMessage(trainSpec, ["m", "---epochs", "2"]), "unknown option '---epochs' (did you mean '--epochs'?)")
    }

    func testUnknownOptionSuggestsANearName() {
        XCTAssertEqual(parseMessage(trainSpec, ["m", "--epoch", "2"]), "unknown option '--epoch' (did you mean '--epochs'?)")
        XCTAssertEqual(parseMessage(trainSpec, ["m", "--verbos"]), "unknown option '--verbos' (did you mean '--verbose'?)")
        XCTAssertEqual(parseMessage(trainSpec, ["m", "--hlep"]), "unknown option '--hlep' (did you mean '--help'?)")
    }

    func testPositionals() throws {
        let one = try parse(trainSpec, ["m"])
        XCTAssertEqual(one.positional("model"), "m")
        XCTAssertNil(one.positional("output"))
        XCTAssertEqual(one.positionals, ["m"])

        let two = try parse(trainSpec, ["m", "--verbose", "out"])
        XCTAssertEqual(two.positional("model"), "m")
        XCTAssertEqual(two.positional("output"), "out")
        XCTAssertEqual(two.positionals, ["m", "out"])
    }

    func testMissingRequiredPositional() {
        XCTAssertEqual(parseMessage(trainSpec, []), "missing argument <model>")
        XCTAssertEqual(parseMessage(trainSpec, ["--epochs", "2"]), "missing argument <model>")
    }

    func testUnexpectedPositional() {
        XCTAssertEqual(parseMessage(trainSpec, ["m", "out", "extra"]), "unexpected argument 'extra'")
        let noPositionals = CommandSpec(name: "bench", abstract: "Benchmark.", options: [.flag("quick", help: "Fewer runs.")])
        XCTAssertEqual(parseMessage(noPositionals, ["--quick", "what"]), "unexpected argument 'what'")
    }

    func testVariadicPositional() throws {
        XCTAssertEqual(try parse(scoreSpec, ["a", "b", "c"]).positionalList("texts"), ["a", "b", "c"])
        XCTAssertEqual(try parse(scoreSpec, []).positionalList("texts"), [])
        XCTAssertEqual(try parse(scoreSpec, ["a", "-b", "2", "c"]).positionalList("texts"), ["a", "c"])
    }

    func testTypedGettersNameTheOption() throws {
        let parsed = try parse(trainSpec, ["m", "--epochs", "x", "--lr", "abc", "--alpha", "1.5e"])
        XCTAssertEqual(usageMessage { _ = try parsed.int("epochs") }, "--epochs expects an integer, got 'x'")
        XCTAssertEqual(usageMessage { _ = try parsed.int("epochs", default: 1) }, "--epochs expects an integer, got 'x'")
        XCTAssertEqual(usageMessage { _ = try parsed.double("lr") }, "--lr expects a number, got 'abc'")
        XCTAssertEqual(usageMessage { _ = try parsed.double("alpha", default: 0) }, "--alpha expects a number, got '1.5e'")

        let fractional = try parse(trainSpec, ["m", "--epochs", "2.5"])
        XCTAssertEqual(usageMessage { _ = try fractional.int("epochs") }, "--epochs expects an integer, got '2.5'")
        let huge = try parse(trainSpec, ["m", "--epochs", "99999999999999999999"])
        XCTAssertEqual(usageMessage { _ = try huge.int("epochs") }, "--epochs expects an integer, got '99999999999999999999'")
    }

    func testDoubleRefusesNonFinite() throws {
        for text in ["nan", "inf", "-inf"] {
            let parsed = try parse(trainSpec, ["m", "--lr=\(text)"])
            XCTAssertEqual(usageMessage { _ = try parsed.double("lr") }, "--lr expects a number, got '\(text)'")
        }
        XCTAssertEqual(try parse(trainSpec, ["m", "--lr", "1e-4"]).double("lr"), 1e-4)
        XCTAssertEqual(try parse(trainSpec, ["m", "--lr", "3"]).double("lr"), 3)
    }

    func testGetterErrorsCarryTheUsageLine() throws {
        let parsed = try parse(trainSpec, ["m", "--epochs", "x"])
        do {
            _ = try parsed.int("epochs")
            XCTFail("expected a UsageError")
        } catch {
            XCTAssertEqual(error.usage, "prm train [options] <model> [<output>]")
            XCTAssertEqual(error.description, "--epochs expects an integer, got 'x'\nusage: prm train [options] <model> [<output>]")
        }
    }

    func testRequire() throws {
        let absent = try parse(trainSpec, ["m"])
        XCTAssertEqual(usageMessage { _ = try absent.require("data") }, "missing required option --data")
        XCTAssertEqual(try parse(trainSpec, ["m", "-d", "x"]).require("data"), "x")
        // A declared default satisfies the requirement.
        XCTAssertEqual(try absent.require("epochs"), "3")
    }

    func testHelpAnywhere() throws {
        for arguments in [["-h"], ["--help"], ["m", "--help"], ["--epochs", "3", "-h"],
                          ["m", "--bogus", "--help"], ["--epochs", "x", "--help"], ["m", "a", "b", "c", "-h"]] {
            XCTAssertEqual(try trainSpec.parse(arguments), .help, "\(arguments)")
        }
    }

    func testHelpAfterDoubleDashOrInsideAValueIsNotHelp() throws {
        XCTAssertEqual(try parse(trainSpec, ["--", "--help"]).positional("model"), "--help")
        XCTAssertEqual(try parse(trainSpec, ["m", "--data=--help"]).string("data"), "--help")
    }

    func testUsageErrorsFromParseCarryTheUsageLine() {
        do {
            _ = try scoreSpec.parse(["--nope"])
            XCTFail("expected a UsageError")
        } catch {
            XCTAssertEqual(error, CLIError.usageError("unknown option '--nope'", usage: "prm score [options] [<texts>...]"))
        }
    }

    func testUsageErrorDescription() {
        XCTAssertEqual(CLIError.usageError("bad").description, "bad")
        XCTAssertEqual(CLIError.usageError("bad", usage: "prm x").description, "bad\nusage: prm x")
    }

    func testLooksLikeOption() {
        for token in ["--", "--x", "-x", "-xy", "--1", "-e5"] {
            XCTAssertTrue(CommandSpec.looksLikeOption(token), token)
        }
        for token in ["", "-", "x", "-1", "-1.5", "-1e3", "-.5", "-inf", "1"] {
            XCTAssertFalse(CommandSpec.looksLikeOption(token), token)
        }
    }

    func testEditDistance() {
        XCTAssertEqual(editDistance("", "abc"), 3)
        XCTAssertEqual(editDistance("abc", ""), 3)
        XCTAssertEqual(editDistance("kitten", "sitting"), 3)
        XCTAssertEqual(editDistance("--epoch", "--epochs"), 1)
        XCTAssertEqual(editDistance("same", "same"), 0)
        // A swap of neighbours is one edit.
        XCTAssertEqual(editDistance("trian", "train"), 1)
        XCTAssertEqual(editDistance("ab", "ba"), 1)
        XCTAssertEqual(editDistance("abc", "ca"), 3)
        XCTAssertNil(closestMatch(to: "--zzzzzz", among: ["--epochs", "--help"]))
        XCTAssertEqual(closestMatch(to: "trian", among: ["train", "eval"]), "train")
    }
}

// MARK: - Help text and spec validation

final class HelpTextTests: XCTestCase {
    func testUsageLine() {
        XCTAssertEqual(trainSpec.usage(), "prm train [options] <model> [<output>]")
        XCTAssertEqual(scoreSpec.usage(program: "x"), "x score [options] [<texts>...]")
        XCTAssertEqual(CommandSpec(name: "bench", abstract: "B.").usage(), "prm bench")
    }

    func testFullHelpText() {
        let expected = """
            usage: prm train [options] <model> [<output>]

            Train a reward model on preference pairs.

            Arguments:
              <model>            Model folder to start from.
              <output>           Where to write the checkpoint.

            Options:
              -e, --epochs <n>   Passes over the data. (default: 3)
                  --lr <rate>    Learning rate.
                  --alpha <x>    Mixing weight. (default: 0.5)
              -d, --data <path>  Training data (JSONL).
              -t, --tag <name>   Tag the run. (repeatable)
              -v, --verbose      Log every step.
              -h, --help         Show this help and exit.

            Example:
              prm train --epochs 3 --data train.jsonl models/minilm

            """
        XCTAssertEqual(trainSpec.helpText(), expected)
    }

    func testHelpListsEveryOptionWithPlaceholderAndDefault() {
        let help = trainSpec.helpText()
        for option in trainSpec.options {
            XCTAssertTrue(help.contains("--\(option.name)"), option.name)
            if let placeholder = option.placeholder { XCTAssertTrue(help.contains("--\(option.name) <\(placeholder)>"), option.name) }
            if let value = option.defaultValue { XCTAssertTrue(help.contains("(default: \(value))"), option.name) }
        }
    }

    func testHelpWithoutPositionalsOrDiscussion() {
        let spec = CommandSpec(name: "bench", abstract: "Time the kernels.", options: [.flag("quick", short: "q", help: "Fewer runs.")])
        XCTAssertEqual(spec.helpText(), """
            usage: prm bench [options]

            Time the kernels.

            Options:
              -q, --quick  Fewer runs.
              -h, --help   Show this help and exit.

            """)
    }

    func testVariadicPositionalInHelp() {
        XCTAssertTrue(scoreSpec.helpText().contains("\n  <texts>...       Texts to score.\n"), scoreSpec.helpText())
    }

    func testLongHelpWrapsWithAHangingIndent() {
        let words = Array(repeating: "word", count: 40).joined(separator: " ")
        let spec = CommandSpec(name: "x", abstract: "X.", options: [.flag("long", help: words)])
        let help = spec.helpText()
        let lines = help.split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertTrue(lines.allSatisfy { $0.count <= 80 }, help)
        let start = lines.firstIndex { $0.hasPrefix("      --long") }
        XCTAssertNotNil(start)
        // Help column at 14 ("  " + "    --long" + 2 spaces) leaves 66 columns: 13 words of 4.
        let thirteen = Array(repeating: "word", count: 13).joined(separator: " ")
        if let start {
            XCTAssertEqual(String(lines[start]), "      --long  " + thirteen)
            XCTAssertEqual(String(lines[start + 1]), String(repeating: " ", count: 14) + thirteen)
            XCTAssertEqual(String(lines[start + 3]), String(repeating: " ", count: 14) + "word")
        }
        // All 40 words survive the wrap.
        XCTAssertEqual(help.components(separatedBy: "word").count - 1, 40)
    }

    func testVeryWideOptionPutsHelpOnTheNextLine() {
        let spec = CommandSpec(name: "x", abstract: "X.", options: [
            .value("a-very-long-option-name", placeholder: "placeholder", help: "Help."),
            .flag("b", help: "B."),
        ])
        let help = spec.helpText()
        XCTAssertTrue(help.contains("\n      --a-very-long-option-name <placeholder>\n" + String(repeating: " ", count: 28) + "Help.\n"), help)
        XCTAssertTrue(help.contains("\n      --b" + String(repeating: " ", count: 28 - 9) + "B.\n"), help)
    }

    func testWrap() {
        XCTAssertEqual(HelpFormatter.wrap("a bb ccc dddd", width: 6), ["a bb", "ccc", "dddd"])
        XCTAssertEqual(HelpFormatter.wrap("", width: 6), [])
        XCTAssertEqual(HelpFormatter.wrap("abcdefgh ij", width: 4), ["abcdefgh", "ij"])
    }

    func testValidSpecsHaveNoProblems() {
        XCTAssertEqual(trainSpec.problems(), [])
        XCTAssertEqual(scoreSpec.problems(), [])
    }

    func testSpecProblemsAreFound() {
        let bad = CommandSpec(
            name: "bad",
            abstract: "Two\nlines.",
            options: [
                .flag("x", short: "x", help: ""),
                .flag("x", help: ""),
                .flag("help", help: ""),
                .flag("y", short: "h", help: ""),
                .flag("z", short: "1", help: ""),
                OptionSpec(name: "w", kind: .flag, help: "", defaultValue: "1"),
                .value("--dashed", placeholder: "v", help: ""),
                .value("p", placeholder: "", help: ""),
            ],
            positionals: [.optional("a", help: ""), .required("b", help: ""), .variadic("c", help: ""), .required("a", help: "")]
        )
        XCTAssertEqual(bad.problems(), [
            "bad: abstract must be one line",
            "bad: option --x is declared twice (or clashes with --help)",
            "bad: option --help is declared twice (or clashes with --help)",
            "bad: short option -h is declared twice (or clashes with -h)",
            "bad: short option -1 must be a letter",
            "bad: flag --w cannot have a default value",
            "bad: option name '--dashed' must be a word without leading '-' or '='",
            "bad: option --p needs a placeholder",
            "bad: positional <b> must come before optional and variadic ones",
            "bad: variadic positional <c> must be last",
            "bad: positional <a> is declared twice",
            "bad: positional <a> must come before optional and variadic ones",
        ])
        XCTAssertEqual(CommandSpec(name: "help", abstract: "H.").problems(),
                       ["command name 'help' must be a non-empty word, not starting with '-', and not 'help'"])
    }

    func testRegisteredCommandsAreValidAndUnique() {
        let names = PRM.commands.map { $0.spec.name }  // not \.spec.name: crashes swiftc 6.3.1
        XCTAssertEqual(Set(names).count, names.count, "duplicate command names: \(names)")
        for command in PRM.commands {
            XCTAssertEqual(command.spec.problems(), [], command.spec.name)
        }
    }
}

// MARK: - CLI dispatch through CLI.run

/// Records what a test command received; its run returns `--exit` and throws on request.
private enum EchoCommand: Subcommand {
    static let spec = CommandSpec(
        name: "echo",
        abstract: "Repeat the arguments back.",
        options: [
            .value("exit", placeholder: "code", help: "Exit status to return.", default: "0"),
            .flag("fail", help: "Throw a described error."),
            .flag("fail-plain", help: "Throw an error without a description."),
            .flag("fail-multiline", help: "Throw an error whose description has several lines."),
            .flag("fail-foundation", help: "Throw Foundation's file-not-found error."),
            .flag("reject", help: "Throw a UsageError of the command's own."),
        ],
        positionals: [.variadic("words", help: "Words to echo.")]
    )

    struct Described: Error, CustomStringConvertible {
        var description: String { "checkpoint /tmp/run.safetensors: missing tensor 'head.weight'" }
    }
    enum Plain: Error { case broken(code: Int) }
    struct Multiline: Error, CustomStringConvertible {
        var description: String { "shape mismatch:\n  expected [2, 3]\n  got [3, 2]\n" }
    }

    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output _: inout Out) throws -> Int32 {
        if arguments.flag("fail") { throw Described() }
        if arguments.flag("fail-plain") { throw Plain.broken(code: 7) }
        if arguments.flag("fail-multiline") { throw Multiline() }
        if arguments.flag("fail-foundation") { _ = try Data(contentsOf: URL(fileURLWithPath: "/nonexistent/prm-test/file.bin")) }
        if arguments.flag("reject") { throw CLIError.usageError("--reject cannot be used with words") }
        return Int32(try arguments.int("exit", default: 0))
    }
}

private enum ExplodeCommand: Subcommand {
    static let spec = CommandSpec(name: "explode", abstract: "Always fails.")
    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output _: inout Out) throws -> Int32 {
        throw EchoCommand.Described()
    }
}

private let testCommands: [any Subcommand.Type] = [EchoCommand.self, ExplodeCommand.self]

/// Writes the sgemm backend selected while it runs.
private enum BackendReportCommand: Subcommand {
    static let spec = CommandSpec(name: "report", abstract: "Print the sgemm backend.")
    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output: inout Out) throws -> Int32 {
        output.write("\(Compute.backend)\n")
        return 0
    }
}

private struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}

private func cli(_ arguments: [String], commands: [any Subcommand.Type] = testCommands) -> Run {
    var out = ""
    var err = ""
    let status = CLI.run(arguments, commands: commands, stdout: &out, stderr: &err)
    return Run(status: status, stdout: out, stderr: err)
}

final class CLITests: XCTestCase {
    let expectedOverview = """
        prm \(CLI.version): personalized reward models

        usage: prm [--backend NAME] <command> [options]
               prm help <command>

        Commands:
          echo                Repeat the arguments back.
          explode             Always fails.

        Options:
          -h, --help          Show this overview and exit.
              --version       Print the version and exit.
              --backend NAME  Matrix library for every sgemm: onednn or openblas
                              (default onednn; the PRM_BACKEND environment variable sets
                              it too).

        Run 'prm help <command>' or 'prm <command> --help' for a command's options.

        """

    func testOverview() {
        for arguments in [[], ["--help"], ["-h"], ["help"]] {
            let run = cli(arguments)
            XCTAssertEqual(run.status, 0, "\(arguments)")
            XCTAssertEqual(run.stdout, expectedOverview, "\(arguments)")
            XCTAssertEqual(run.stderr, "", "\(arguments)")
        }
    }

    func testOverviewWithNoCommands() {
        let run = cli([], commands: [])
        XCTAssertEqual(run.status, 0)
        XCTAssertTrue(run.stdout.contains("\nCommands:\n  (none registered)\n"), run.stdout)
    }

    func testVersion() {
        XCTAssertEqual(cli(["--version"]).stdout, "prm \(CLI.version)\n")
        XCTAssertEqual(cli(["--version"]).status, 0)
        let extra = cli(["--version", "x"])
        XCTAssertEqual(extra.status, 2)
        XCTAssertEqual(extra.stderr, "prm: unexpected argument 'x' after --version\n")
    }

    func testCommandHelp() {
        let expected = EchoCommand.spec.helpText()
        for arguments in [["echo", "--help"], ["echo", "-h"], ["help", "echo"], ["--help", "echo"], ["echo", "a", "--bogus", "-h"]] {
            let run = cli(arguments)
            XCTAssertEqual(run.status, 0, "\(arguments)")
            XCTAssertEqual(run.stdout, expected, "\(arguments)")
            XCTAssertEqual(run.stderr, "", "\(arguments)")
        }
        XCTAssertTrue(expected.hasPrefix("usage: prm echo [options] [<words>...]\n\nRepeat the arguments back.\n"), expected)
    }

    func testHelpForUnknownCommand() {
        let run = cli(["help", "nope"])
        XCTAssertEqual(run.status, 2)
        XCTAssertEqual(run.stdout, "")
        XCTAssertEqual(run.stderr, "prm: unknown command 'nope'\nRun 'prm --help' for a list of commands.\n")
    }

    func testHelpWithTooManyArguments() {
        let run = cli(["help", "echo", "more"])
        XCTAssertEqual(run.status, 2)
        XCTAssertEqual(run.stderr, "prm help: unexpected argument 'more'\nusage: prm help [<command>]\n")
    }

    func testUnknownCommand() {
        let run = cli(["frobnicate", "--x"])
        XCTAssertEqual(run.status, 2)
        XCTAssertEqual(run.stdout, "")
        XCTAssertEqual(run.stderr, "prm: unknown command 'frobnicate'\nRun 'prm --help' for a list of commands.\n")
    }

    func testUnknownCommandSuggestsANearName() {
        XCTAssertEqual(cli(["ecoh"]).stderr, "prm: unknown command 'ecoh' (did you mean 'echo'?)\nRun 'prm --help' for a list of commands.\n")
    }

    /// `--backend` before the command selects the sgemm library for that command only.
    func testBackendOptionSelectsTheBackendForTheCommand() {
        let before = Compute.backend
        for backend in Compute.Backend.allCases {
            for arguments in [["--backend", backend.rawValue, "report"], ["--backend=\(backend.rawValue)", "report"]] {
                let run = cli(arguments, commands: [BackendReportCommand.self])
                XCTAssertEqual(run.status, 0, "\(arguments)")
                XCTAssertEqual(run.stdout, "\(backend)\n", "\(arguments)")
                XCTAssertEqual(run.stderr, "", "\(arguments)")
                XCTAssertEqual(Compute.backend, before, "the previous backend must be restored after the command")
            }
        }
        // The last one given wins; the overview is still the overview.
        XCTAssertEqual(cli(["--backend", "onednn", "--backend", "openblas", "report"], commands: [BackendReportCommand.self]).stdout, "openblas\n")
        XCTAssertEqual(cli(["--backend", "openblas", "--help"]).stdout, expectedOverview)
    }

    func testBadBackendIsAUsageError() {
        let unknown = cli(["--backend", "mkl", "echo"])
        XCTAssertEqual(unknown.status, 2)
        XCTAssertEqual(unknown.stderr, "prm: unknown backend 'mkl' (available: onednn, openblas)\nusage: prm [--backend NAME] <command> [options]\n")
        let missing = cli(["--backend"])
        XCTAssertEqual(missing.status, 2)
        XCTAssertEqual(missing.stderr, "prm: --backend needs a value (onednn, openblas)\nusage: prm [--backend NAME] <command> [options]\n")
    }

    func testUnknownTopLevelOption() {
        let run = cli(["--verbose"])
        XCTAssertEqual(run.status, 2)
        XCTAssertEqual(run.stderr, "prm: unknown option '--verbose'\nRun 'prm --help' for usage.\n")
    }

    func testSuccessAndTheCommandsOwnStatus() {
        let ok = cli(["echo", "a", "b"])
        XCTAssertEqual(ok.status, 0)
        XCTAssertEqual(ok.stdout, "")
        XCTAssertEqual(ok.stderr, "")
        XCTAssertEqual(cli(["echo", "--exit", "3"]).status, 3)
        XCTAssertEqual(cli(["echo", "--exit=-1", "a"]).status, -1)
    }

    func testParseErrorExits2WithMessageAndUsage() {
        let run = cli(["echo", "--nope"])
        XCTAssertEqual(run.status, 2)
        XCTAssertEqual(run.stdout, "")
        XCTAssertEqual(run.stderr, "prm echo: unknown option '--nope'\nusage: prm echo [options] [<words>...]\n")

        let missing = cli(["echo", "--exit"])
        XCTAssertEqual(missing.status, 2)
        XCTAssertEqual(missing.stderr, "prm echo: missing value for --exit <code>\nusage: prm echo [options] [<words>...]\n")

        let surplus = cli(["explode", "x"])
        XCTAssertEqual(surplus.status, 2)
        XCTAssertEqual(surplus.stderr, "prm explode: unexpected argument 'x'\nusage: prm explode\n")
    }

    func testGetterErrorExits2NamingTheOption() {
        let run = cli(["echo", "--exit", "x"])
        XCTAssertEqual(run.status, 2)
        XCTAssertEqual(run.stderr, "prm echo: --exit expects an integer, got 'x'\nusage: prm echo [options] [<words>...]\n")
    }

    func testCommandsOwnUsageErrorGetsTheUsageLine() {
        let run = cli(["echo", "--reject"])
        XCTAssertEqual(run.status, 2)
        XCTAssertEqual(run.stderr, "prm echo: --reject cannot be used with words\nusage: prm echo [options] [<words>...]\n")
    }

    func testOtherErrorsExit1WithTheirDescription() {
        let described = cli(["echo", "--fail"])
        XCTAssertEqual(described.status, 1)
        XCTAssertEqual(described.stdout, "")
        XCTAssertEqual(described.stderr, "prm echo: error: checkpoint /tmp/run.safetensors: missing tensor 'head.weight'\n")

        XCTAssertEqual(cli(["explode"]).stderr, "prm explode: error: checkpoint /tmp/run.safetensors: missing tensor 'head.weight'\n")
        XCTAssertEqual(cli(["explode"]).status, 1)

        let plain = cli(["echo", "--fail-plain"])
        XCTAssertEqual(plain.status, 1)
        XCTAssertEqual(plain.stderr, "prm echo: error: broken(code: 7)\n")
    }

    func testMultilineDescriptionsBecomeOneLine() {
        let run = cli(["echo", "--fail-multiline"])
        XCTAssertEqual(run.status, 1)
        XCTAssertEqual(run.stderr, "prm echo: error: shape mismatch: expected [2, 3] got [3, 2]\n")
    }

    func testFoundationErrorsUseTheirLocalizedTextAndPath() {
        let run = cli(["echo", "--fail-foundation"])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.hasPrefix("prm echo: error: "), run.stderr)
        XCTAssertTrue(run.stderr.hasSuffix(" (/nonexistent/prm-test/file.bin)\n"), run.stderr)
        XCTAssertFalse(run.stderr.contains("Error Domain="), run.stderr)
        XCTAssertEqual(run.stderr.filter { $0 == "\n" }.count, 1, run.stderr)
    }

    func testMainUsesTheRegistry() {
        // With no commands registered yet, any command name is unknown; `prm --version` works.
        XCTAssertEqual(CLI.main(["--version"], commands: PRM.commands), 0)
        if PRM.commands.isEmpty { XCTAssertEqual(CLI.main(["help", "train"], commands: PRM.commands), 2) }
    }
}

/// The soft prompt's own defaults (pooling the reply, a faster backbone) apply only when the
/// soft prompt is asked for; explicit options and --vanilla keep theirs.
final class TrainDefaultsTests: XCTestCase {
    private func settings(_ arguments: [String]) throws -> TrainingSettings {
        try TrainCommand.settingsFrom(parse(TrainCommand.spec, ["--out", "unused"] + arguments))
    }

    func testSoftPromptDefaults() throws {
        let linear = try settings([])
        XCTAssertEqual(linear.pooling, .window)
        XCTAssertEqual(linear.learningRate, TrainingSettings().learningRate)
        let soft = try settings(["--aggregator", "soft-prompt"])
        XCTAssertEqual(soft.pooling, .reply)
        XCTAssertEqual(soft.learningRate, TrainingSettings.softPromptLearningRate)
        let chosen = try settings(["--aggregator", "soft-prompt", "--pooling", "window", "--lr", "1e-5"])
        XCTAssertEqual(chosen.pooling, .window)
        XCTAssertEqual(chosen.learningRate, 1e-5)
        let vanilla = try settings(["--vanilla"])
        XCTAssertEqual(vanilla.aggregator, .softPrompt)
        XCTAssertEqual(vanilla.pooling, .window)
        XCTAssertEqual(vanilla.learningRate, TrainingSettings().learningRate)
    }
}
