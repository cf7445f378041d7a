import Foundation
import PRMCore

enum BenchCommand: Subcommand {
    static let spec = CommandSpec(
        name: "bench",
        abstract: "Benchmark kernels and training against this machine's sgemm peak.",
        discussion: """
        Suites:
          kernels   sgemm GFLOP/s (1024³ and MiniLM's shapes) and MiniLM forward throughput for \
        1×128, 32×128 and a ragged batch of 32 real replies, as fractions of the measured peak.
          train     reward-model training steps (MiniLM, paper defaults) on full 256-token windows: \
        tokens/s, fraction of the sgemm peak, and the time one epoch of --data would take.

        Results go to --json (and a markdown table beside it, same name with .md).

        Examples:
          prm bench kernels --json bench/results/kernels.json
          prm bench train --json bench/results/train.json
        """,
        options: [
            .value("model", placeholder: "DIR", help: "Encoder folder.", default: "models/all-MiniLM-L6-v2"),
            .value("repeats", placeholder: "N", help: "Timed runs per case (best is reported).", default: "5"),
            .value("data", placeholder: "FILE", help: "JSONL with 'chosen' replies for the ragged batch.", default: "data/lengthpref/train.jsonl"),
            .value("steps", placeholder: "N", help: "Timed training steps (train suite).", default: "4"),
            .value("json", placeholder: "FILE", help: "Write results as JSON (and .md beside it)."),
        ],
        positionals: [.required("suite", help: "Which benchmark: kernels or train.")])

    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output out: inout Out) throws -> Int32 {
        let suite = arguments.positional("suite") ?? ""
        let data = arguments.isSet("data") ? arguments.string("data").map { URL(fileURLWithPath: $0) } : nil
        let output = arguments.string("json").map { URL(fileURLWithPath: $0) }
        switch suite {
        case "kernels":
            let report = try BenchKernels.run(model: try EmbedCommand.modelFolder(arguments),
                                              repeats: try arguments.int("repeats", default: 5), data: data, output: output)
            out.write(BenchKernels.markdown(report))
        case "train":
            let report = try BenchTrain.run(model: try EmbedCommand.modelFolder(arguments), data: data ?? DefaultData.lengthprefTrain(),
                                            steps: max(1, try arguments.int("steps", default: 4)), output: output)
            out.write(BenchTrain.markdown(report))
        default:
            throw arguments.usageError("unknown suite '\(suite)' (available: kernels, train)")
        }
        return 0
    }
}
