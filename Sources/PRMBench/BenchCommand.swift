import Foundation
import PRMCLI
import PRMCore
import PRMModel

/// `prm bench`: the benchmark suites. The `prm` executable registers it after `CLI.commands`:
/// this target builds on PRMCLI's plumbing, so PRMCLI cannot name it.
public enum BenchCommand: Subcommand {
    public static let spec = CommandSpec(
        name: "bench",
        abstract: "Benchmark scoring, kernels and training against this machine's sgemm peak.",
        discussion: """
        Suites:
          score     the sentence embedder's inference pass from token ids: 512 real replies of --data \
        (first distinct chosen/rejected, ≤ 128 tokens) packed in arrival order and length-sorted, \
        uniform 32×128 and 64×64, one 128-token sequence; seq/s, tokens/s, fraction of the sgemm \
        peak and peak resident memory per case; sgemm on MiniLM's shapes per backend. \
        --all-backends runs every case on each backend; --dump-inputs writes every case's token ids \
        (JSON {"case": [[ids...], ...]}) for bench/ort_peer.py. --reward-model DIR (a checkpoint from \
        prm train) adds one prompt's N = 1, 4, 16, 64 candidates ranked through the Scorer, with \
        peak resident memory; without it those cases are skipped with a note.
          kernels   sgemm GFLOP/s (1024³ and MiniLM's shapes) and MiniLM forward throughput for \
        1×128, 32×128 and a ragged batch of 32 real replies, as fractions of the measured peak.
          train     reward-model training steps (MiniLM, paper defaults) on full 256-token windows: \
        tokens/s, fraction of the sgemm peak, and the time one epoch of --data would take.
          generate  a policy's sampling tokens/s (--policy DIR from prm sft / prm ppo): 32 prompts one at a \
        time against the same 32 decoded as one batch, and 8 samples each of 4 prompts sharing their prompt's cache. \
        With --policy FILE.gguf (SmolLM2): decoding tokens/s at batch 1 and for 8 samples of one prompt, as a \
        fraction of the memory bandwidth measured in the same run, load time and peak RSS.
          reward    a reward-model checkpoint (--reward-model DIR) scoring the token ids of --inputs FILE \
        (JSON {"cases": [{"name", "items": [{"prompt": [ids], "reply": [ids]}, ...]}]}) as the generic user, \
        through the product's scoring path (packed batches; a causal backbone computes a prompt its replies \
        share once) at --precision: sequences/s, tokens/s, peak RSS and every score per case. \
        bench/decoder_vs_transformers.py runs it beside Hugging Face transformers.
          serve     the ZeroMQ service on a checkpoint (--model DIR from prm train): latency of one \
        client (wire + JSON + queueing against compute), --clients concurrent clients against \
        in-process batched throughput, and one candidate set ranked for --users users with and \
        without the h cache; rank p50/p99 of --clients clients alone and beside a client adapting \
        new users back to back (adapt op, 4 comparisons each), same server; the HTTP front door on the same server: one rank over HTTP against \
        ZeroMQ (p50/p95), and 64 HTTP clients sending one sample each against the same samples as \
        64-item ZeroMQ score requests, with batch statistics; then deployments as processes: one server, the proxy with one worker \
        and with two single-threaded workers, against 1-32 concurrent clients, N = 1-64 candidates, \
        CURVE off and on (--quick: a few cases in seconds). --endpoint measures a running server \
        instead of starting one (no deployment cases). Plots: python3 bench/plot_serve.py FILE.json.

        Results go to --json (and a markdown table beside it, same name with .md).

        Examples:
          prm bench score --all-backends --json /tmp/score.json   (bench/score_vs_ort.py runs it beside ONNX Runtime)
          prm bench kernels --json bench/results/kernels.json
          prm bench train --json bench/results/train.json
          prm bench serve --model runs/demo --json bench/results/serve.json
          prm bench generate --policy runs/sft --json bench/results/generate.json
        """,
        options: [
            .value("model", placeholder: "DIR", help: "Encoder folder.", default: ModelLocator.searchOrder),
            .value("repeats", placeholder: "N", help: "Timed runs per case (best is reported).", default: "5"),
            .value("data", placeholder: "FILE", help: "JSONL with 'chosen' replies for the ragged batch.", default: DefaultData.trainFile),
            .value("steps", placeholder: "N", help: "Timed training steps (train suite).", default: "4"),
            .value("policy", placeholder: "PATH", help: "generate: the policy folder, or a GGUF chat model file."),
            .value("json", placeholder: "FILE", help: "Write results as JSON (and .md beside it)."),
            .value("endpoint", placeholder: "ENDPOINT", help: "serve: measure this running server instead of starting one."),
            .value("requests", placeholder: "N", help: "serve: requests per case.", default: "64"),
            .value("clients", placeholder: "N", help: "serve: concurrent clients.", default: "8"),
            .value("candidates", placeholder: "N", help: "serve: candidate replies per request.", default: "16"),
            .value("users", placeholder: "N", help: "serve: users one candidate set is ranked for (cache case).", default: "40"),
            .flag("quick", help: "serve: the deployment cases in seconds (CI), not minutes."),
            .value("prm-binary", placeholder: "FILE", help: "serve: the prm executable that runs the deployment cases' processes (default: this one)."),
            .flag("no-deployments", help: "serve: skip the deployment cases (processes of servers, proxy and workers)."),
            .flag("all-backends", help: "Run every case on each sgemm backend (score suite)."),
            .value("dump-inputs", placeholder: "FILE", help: "Write each case's token ids as JSON (score suite)."),
            .value("reward-model", placeholder: "DIR", help: "score: a reward-model checkpoint to time ranking N candidates with; reward: the checkpoint to time."),
            .value("inputs", placeholder: "FILE", help: "reward: the cases' token ids (JSON)."),
            PrecisionOption.spec, PrecisionOption.int8Products,
        ],
        positionals: [.required("suite", help: "Which benchmark: score, kernels, train, serve, generate or reward.")])

    public static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output out: inout Out) throws -> Int32 {
        let suite = arguments.positional("suite") ?? ""
        let data = arguments.isSet("data") ? arguments.string("data").map { URL(fileURLWithPath: $0) } : nil
        let output = arguments.string("json").map { URL(fileURLWithPath: $0) }
        switch suite {
        case "score":
            let report = try BenchScore.run(model: try arguments.modelFolder(), data: data ?? DefaultData.lengthprefTrain(),
                                            rewardModel: arguments.string("reward-model").map { URL(fileURLWithPath: $0) },
                                            repeats: try arguments.count("repeats"),
                                            allBackends: arguments.flag("all-backends"), precision: try arguments.precision(),
                                            dumpInputs: arguments.string("dump-inputs").map { URL(fileURLWithPath: $0) }, output: output)
            out.write(BenchScore.markdown(report))
        case "kernels":
            let report = try BenchKernels.run(model: try arguments.modelFolder(),
                                              repeats: try arguments.count("repeats"), data: data, output: output)
            out.write(BenchKernels.markdown(report))
        case "train":
            let report = try BenchTrain.run(model: try arguments.modelFolder(), data: data ?? DefaultData.lengthprefTrain(),
                                            steps: try arguments.count("steps"), output: output)
            out.write(BenchTrain.markdown(report))
        case "serve":
            guard arguments.isSet("model") else { throw arguments.usageError("bench serve needs --model DIR, a checkpoint from prm train") }
            let report = try BenchServe.run(model: arguments.string("model").map { URL(fileURLWithPath: $0) },
                                            endpoint: try arguments.endpoint("endpoint"),
                                            requests: try arguments.count("requests", atLeast: 2), clients: try arguments.count("clients"),
                                            candidates: try arguments.count("candidates"), users: try arguments.count("users"),
                                            data: data ?? DefaultData.lengthprefTrain(), quick: arguments.flag("quick"),
                                            binary: arguments.flag("no-deployments") ? nil : try prmBinary(arguments), output: output)
            out.write(BenchServe.markdown(report) + "\n")
        case "generate":
            let policy = URL(fileURLWithPath: try arguments.require("policy"))
            if policy.pathExtension == "gguf" {
                let report = try BenchChatGenerate.run(model: policy, precision: try arguments.precision(), repeats: try arguments.count("repeats"), output: output)
                out.write(BenchChatGenerate.markdown(report))
                return 0
            }
            let report = try BenchGenerate.run(policy: policy, data: data ?? DefaultData.lengthprefTrain(),
                                               repeats: try arguments.count("repeats"), output: output)
            out.write(BenchGenerate.markdown(report))
        case "reward":
            let report = try BenchRewardScore.run(checkpoint: URL(fileURLWithPath: try arguments.require("reward-model")),
                                                  inputs: URL(fileURLWithPath: try arguments.require("inputs")),
                                                  precision: try arguments.precision(), repeats: try arguments.count("repeats"), output: output)
            out.write(BenchRewardScore.markdown(report))
        default:
            throw arguments.usageError("unknown suite '\(suite)' (available: score, kernels, train, serve, generate, reward)")
        }
        return 0
    }

    /// The prm executable for child processes: --prm-binary, else the running one.
    static func prmBinary(_ a: ParsedArguments) throws -> URL {
        if let path = a.string("prm-binary") { return URL(fileURLWithPath: path) }
        let running = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        guard running.lastPathComponent == "prm" else {
            throw a.usageError("this process is \(running.lastPathComponent), not prm: give --prm-binary (or --no-deployments)")
        }
        return running
    }
}
