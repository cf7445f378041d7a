import Foundation
import PRMCore
import PRMModel
import PRMScoring
import PRMTraining

/// `prm probe`: linear probes from a reward model's pooled state h to observable properties of
/// replies, a diagnostic of what a user vector can express (issue 16).
enum ProbeCommand: Subcommand {
    static let spec = CommandSpec(
        name: "probe",
        abstract: "Measure what a reward model's pooled state h carries linearly about replies (linear probes).",
        discussion: """
        With the linear head a user's reward is <e_u, h>: a preference that is a weighted sum of \
        properties of the reply is expressible only as far as h carries those properties linearly. \
        This command measures it. Replies are the distinct (prompt, reply) pairs of --data's chosen \
        and rejected sides (at most --max-replies, whole prompts drawn with --seed); h is computed \
        as the model scores them, through its window, for the generic user 0. They are split in two \
        halves by prompt; a ridge regression (lambda by 5-fold cross-validation on the first half, \
        h standardised on it) predicts each property from h and is scored on the second half.

        Properties (probe targets only; nothing here is ever an input to a model): log word count \
        (R2), contains a question mark, refuses ("I'm sorry", "I can't", "As an AI", ...), negates \
        (stylepref's words: no, not, can't, never, ...), first \
        person ("I", "I'm", "my", "me"), list formatting (a line starting with "- ", "* ", "• ", \
        "1. "): accuracy, balanced accuracy and base rate of the ridge prediction of 0/1 \
        thresholded at 0.5, and the ROC area (AUC) of the unthresholded prediction. "pair ordering" is the share of held-out comparison pairs that the \
        word-count probe orders as their true word counts do.

        --model is a checkpoint from prm train (loaded and checked as prm eval does) or a plain \
        Hugging Face backbone folder (the frozen encoder, inside a reward model with prm train's \
        default settings; only h matters, so the untrained head does not). --reply-counts sets that \
        model's learned log-counts over the reply (untrained: at initialisation they count the \
        reply's tokens); 0 probes the backbone's mean pooling alone.

        Examples:
          prm probe --model models/all-MiniLM-L6-v2 --data data/lengthpref/train.jsonl
          prm probe --model runs/prm --data data/stylepref/train.jsonl --json runs/prm/probe.json
        """,
        options: [
            .value("model", placeholder: "DIR", help: "A prm train checkpoint or a Hugging Face backbone folder."),
            .value("data", placeholder: "FILE", help: "Comparisons whose replies are probed (JSONL, as prm train reads)."),
            .value("max-replies", placeholder: "N", help: "Distinct replies to probe at most.", default: "\(RepresentationProbe.Settings().maxReplies)"),
            .value("seed", placeholder: "N", help: "Seed for sampling replies, the halves and the folds.", default: "\(RepresentationProbe.Settings().seed)"),
            .value("json", placeholder: "FILE", help: "Also write the report as JSON."),
            .value("batch-tokens", placeholder: "N", help: "Tokens per packed batch when computing h.", default: "8192"),
            .value("threads", placeholder: "N", help: "Compute threads (sgemm and prm's parallel regions).", default: "\(Parallel.cores)"),
            .value("reply-counts", placeholder: "K", help: "Backbone folders only: reply counts of the probed model (0: mean pooling alone).",
                   default: "\(TrainingSettings().replyCounts)"),
            .flag("skip-invalid", help: "Skip invalid data rows instead of stopping."),
        ])

    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output out: inout Out) throws -> Int32 {
        var settings = RepresentationProbe.Settings()
        settings.maxReplies = try arguments.count("max-replies", atLeast: 4)
        settings.seed = UInt64(try arguments.count("seed", atLeast: 0))
        let batchTokens = try arguments.count("batch-tokens")
        let threads = try arguments.threads(), savedThreads = Compute.threads
        Compute.threads = threads
        defer { Compute.threads = savedThreads }  // in-process callers (tests) get theirs back

        let modelPath = try arguments.require("model")
        let folder = URL(fileURLWithPath: modelPath)
        let dataPath = try arguments.require("data")
        let data = try PreferenceDataset.load(URL(fileURLWithPath: dataPath), skipInvalid: arguments.flag("skip-invalid"))
        if data.skipped > 0 { Log.warning("\(dataPath): skipped \(data.skipped) invalid rows") }
        let replyCounts = arguments.isSet("reply-counts") ? try arguments.count("reply-counts", atLeast: 0) : nil
        let (model, users, kind) = try loadModel(folder, replyCounts: replyCounts)

        let replies = RepresentationProbe.replies(from: data.comparisons, maxReplies: settings.maxReplies, seed: settings.seed)
        Log.info("probing \(replies.count) replies of \(dataPath) with the \(kind) \(modelPath) (\(model.config.aggregator.rawValue), "
                 + "window \(model.config.maxLength))")
        let progress = ProgressBar(total: replies.count, label: "h", unit: "reply")
        let (states, truncated) = RepresentationProbe.pooledStates(model: model, users: users, replies: replies,
                                                                   tokensPerBatch: batchTokens, progress: progress)
        progress.finish()
        let width = model.backbone.hiddenSize
        if let bad = states.firstIndex(where: { !$0.isFinite }) {
            throw CLIError("h of reply \(bad / width + 1) is not finite: the model cannot be probed")
        }
        var report = try RepresentationProbe.run(states: states, width: width, replies: replies, comparisons: data.comparisons,
                                                 settings: settings)
        report.model = modelPath  // as given: recorded reports name repo-relative folders, not this machine's paths
        report.modelKind = kind
        report.aggregator = model.config.aggregator.rawValue
        report.data = dataPath
        report.width = width
        report.truncated = truncated
        if let json = arguments.string("json") { try AtomicFile.write(Data((report.json() + "\n").utf8), to: URL(fileURLWithPath: json)) }
        out.write(report.table() + "\n")
        return 0
    }

    /// A checkpoint (config.json has a "prm" section) as `prm eval` loads it, or a backbone
    /// folder inside a reward model with `prm train`'s default settings and no users, with
    /// `replyCounts` when given (a checkpoint has its own: giving them is refused before loading it).
    static func loadModel(_ folder: URL, replyCounts: Int?) throws -> (model: RewardModel, users: UserTable, kind: String) {
        let configURL = folder.appendingPathComponent("config.json")
        let config = try RunFolder.jsonDictionary(configURL)
        if let section = config["prm"] {
            if replyCounts != nil {
                let own = try RunFolder.fields(RewardModelConfig.self, of: section as? [String: Any] ?? [:]) { CLIError(file: configURL, "prm: " + $0) }.replyCounts
                throw CLIError.usageError("--reply-counts applies to a backbone folder; the checkpoint \(folder.path) has its own (\(own))")
            }
            let (model, users, _) = try ModelProbe.load(folder)
            return (model, users, "checkpoint")
        }
        var defaults = TrainingSettings()
        defaults.replyCounts = replyCounts ?? defaults.replyCounts
        let model = try RewardModel.pretrained(backbone: folder, config: defaults.rewardModelConfig(users: 0), seed: defaults.seed)
        return (model, UserTable(ids: []), "backbone")
    }
}
