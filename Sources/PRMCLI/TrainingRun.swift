import Foundation
import PRMCore
import PRMPolicy
import PRMTraining

/// A trainer's resume state as the commands read it: the settings the run was started with and
/// the data file it read (`TrainingState`, `SFTState`, `PPOState`).
protocol ResumableState: RunState {
    associatedtype Settings
    var settings: Settings { get }
    var dataFile: String? { get }
}

extension TrainingState: ResumableState {}
extension SFTState: ResumableState {}
extension PPOState: ResumableState {}

/// The run orchestration `prm train`, `prm sft` and `prm ppo` share around their trainers: the
/// --out folder and --resume (the saved state, its settings and the data file it read), the
/// live JSONL log, the progress bar and the closing line. Each command supplies its data,
/// trainer and the state's save.
struct TrainingRun<State: ResumableState> {
    let out: URL
    /// The state of the run being resumed; nil for a new run.
    let state: State?
    /// The command's name: its progress label and its log file, `<name>_log.jsonl`.
    let name: String

    init(_ arguments: ParsedArguments, name: String) throws {
        out = URL(fileURLWithPath: try arguments.require("out"))
        state = arguments.flag("resume") ? try State.load(from: out) : nil
        self.name = name
    }

    var resume: Bool { state != nil }

    /// The resumed run's settings, or `fresh` (the command line's) for a new run.
    func settings(or fresh: () throws -> State.Settings) rethrows -> State.Settings {
        try state?.settings ?? fresh()
    }

    /// The training file as messages name it, and as the run's state records it (absolute): a
    /// resumed run reads the file it was started on unless --data says otherwise.
    func dataFile(_ arguments: ParsedArguments) throws -> (path: String, absolute: String) {
        let path = try (arguments.isSet("data") ? nil : state?.dataFile) ?? arguments.require("data")
        return (path, URL(fileURLWithPath: path).path)
    }

    /// The training comparisons `load` reads from `dataFile`, the first --limit of them.
    func comparisons(_ arguments: ParsedArguments, load: (String) throws -> PreferenceDataset) throws -> PreferenceDataset {
        let limit = try arguments.optionalCount("limit")
        var data = try load(try dataFile(arguments).path)
        if let limit { data.comparisons = Array(data.comparisons.prefix(limit)) }
        return data
    }

    /// For a resumed run at `done` of `total` units: says where it resumes, or returns false
    /// after saying the run already finished (`pending`: work left after the last unit).
    func continues(at done: Int, of total: Int, unit: String, pending: Bool = false) -> Bool {
        guard done < total || pending else {
            Log.info("\(out.path): the run already finished (\(unit) \(done) of \(total)); nothing to do")
            return false
        }
        Log.info("resuming at \(unit) \(done) of \(total)")
        return true
    }

    /// Creates --out and opens the log (appended to when resuming); the bar counts `remaining` units.
    func start(remaining: Int, unit: String) throws -> (log: JSONLogWriter, progress: ProgressBar) {
        try OutputFolder.create(out)
        let log = try JSONLogWriter(url: out.appendingPathComponent("\(name)_log.jsonl"), append: resume)
        return (log, ProgressBar(total: remaining, label: name, unit: unit))
    }

    func finish(_ progress: ProgressBar) {
        progress.finish()
        Log.info("saved \(out.path)")
    }
}
