import Foundation
import PRMCore

enum BenchCommand: Subcommand {
    static let spec = CommandSpec(
        name: "bench",
        abstract: "Benchmark scoring, kernels and training against this machine's sgemm peak.",
        discussion: """
        Suites:
          score     the sentence embedder's inference pass from token ids: 512 real replies of --data \
        (first distinct chosen/rejected, ≤ 128 tokens) packed in arrival order and length-sorted, \
        uniform 32×128 and 64×64, one 128-token sequence; seq/s, tokens/s, fraction of the sgemm \
        peak and peak resident memory per case; sgemm on MiniLM's shapes per backend. \
        --all-backends runs every case on each backend; --dump-inputs writes every case's token ids \
        (JSON {"case": [[ids...], ...]}) for bench/ort_peer.py.
          kernels   sgemm GFLOP/s (1024³ and MiniLM's shapes) and MiniLM forward throughput for \
        1×128, 32×128 and a ragged batch of 32 real replies, as fractions of the measured peak.
          train     reward-model training steps (MiniLM, paper defaults) on full 256-token windows: \
        tokens/s, fraction of the sgemm peak, and the time one epoch of --data would take.

        Results go to --json (and a markdown table beside it, same name with .md).

        Examples:
          prm bench score --all-backends --json bench/results/score.json --dump-inputs bench/results/score-inputs.json
          prm bench kernels --json bench/results/kernels.json
          prm bench train --json bench/results/train.json
        """,
        options: [
            .value("model", placeholder: "DIR", help: "Encoder folder.", default: "models/all-MiniLM-L6-v2"),
            .value("repeats", placeholder: "N", help: "Timed runs per case (best is reported).", default: "5"),
            .value("data", placeholder: "FILE", help: "JSONL with 'chosen' replies for the ragged batch.", default: "data/lengthpref/train.jsonl"),
            .value("steps", placeholder: "N", help: "Timed training steps (train suite).", default: "4"),
            .value("json", placeholder: "FILE", help: "Write results as JSON (and .md beside it)."),
            .flag("all-backends", help: "Run every case on each sgemm backend (score suite)."),
            .value("dump-inputs", placeholder: "FILE", help: "Write each case's token ids as JSON (score suite)."),
        ],
        positionals: [.required("suite", help: "Which benchmark: score, kernels or train.")])

    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output out: inout Out) throws -> Int32 {
        let suite = arguments.positional("suite") ?? ""
        let data = arguments.isSet("data") ? arguments.string("data").map { URL(fileURLWithPath: $0) } : nil
        let output = arguments.string("json").map { URL(fileURLWithPath: $0) }
        switch suite {
        case "score":
            let report = try BenchScore.run(model: try EmbedCommand.modelFolder(arguments), data: data ?? DefaultData.lengthprefTrain(),
                                            repeats: max(1, try arguments.int("repeats", default: 5)),
                                            allBackends: arguments.flag("all-backends"),
                                            dumpInputs: arguments.string("dump-inputs").map { URL(fileURLWithPath: $0) }, output: output)
            out.write(BenchScore.markdown(report))
        case "kernels":
            let report = try BenchKernels.run(model: try EmbedCommand.modelFolder(arguments),
                                              repeats: try arguments.int("repeats", default: 5), data: data, output: output)
            out.write(BenchKernels.markdown(report))
        case "train":
            let report = try BenchTrain.run(model: try EmbedCommand.modelFolder(arguments), data: data ?? DefaultData.lengthprefTrain(),
                                            steps: max(1, try arguments.int("steps", default: 4)), output: output)
            out.write(BenchTrain.markdown(report))
        default:
            throw arguments.usageError("unknown suite '\(suite)' (available: score, kernels, train)")
        }
        return 0
    }
}
