import Foundation
import PRMCore
import PRMModel

/// A checkpoint a `reload` loaded beside the model served, on a thread of its own (reading the
/// weights takes seconds and must stall neither the requests' I/O nor the compute thread), and
/// handed to the compute thread, which checks that it scores (`ModelProbe`) and switches to it
/// between batches.
struct LoadedCheckpoint {
    let path: String
    let model: RewardModel
    let users: UserTable
    let fingerprint: String
    let loadMs: Double
    /// Its training-time score statistics (nil: it records none).
    let statistics: ScoreStatistics?

    /// Loads and fingerprints the checkpoint at `path`, its encoder prepared for `precision` (the
    /// served model's: a reload does not change how the server computes), a folder served as it is
    /// writing text in `template` when given (`--template`); the error names the folder.
    static func load(_ path: String, precision: Precision, template: TextTemplate?, id: JSONValue) -> Result<LoadedCheckpoint, WireError> {
        let start = Date()
        do {
            let folder = URL(fileURLWithPath: path)
            let (model, users, training) = try Checkpoint.load(folder, template: template)
            try model.backbone.useInferencePrecision(precision)
            let statistics = try ScoreStatistics.recorded(in: training, of: folder)
            return .success(LoadedCheckpoint(path: path, model: model, users: users, fingerprint: ModelFingerprint.of(model, users: users),
                                             loadMs: Date().timeIntervalSince(start) * 1000, statistics: statistics))
        } catch {
            return .failure(WireError(.reloadFailed, "\(path): \(error); the model served keeps serving", id: id))
        }
    }
}
