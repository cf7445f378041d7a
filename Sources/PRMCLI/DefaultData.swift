import Foundation
import PRMModel

/// The lengthpref data the project ships (data/lengthpref), found like the default model.
/// The training file's name and location are public: the benchmarks (PRMBench) default to it too.
public enum DefaultData {
    /// The built-in data as the training commands' options name it (relative to the checkout).
    public static let trainFile = "data/lengthpref/train.jsonl"
    static let devFile = "data/lengthpref/dev.jsonl"

    static func lengthprefDirectory() -> URL {
        let candidates = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("data/lengthpref")]
            + ModelLocator.candidates().map { $0.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("data/lengthpref") }
        return candidates.first { FileManager.default.fileExists(atPath: $0.appendingPathComponent("train.jsonl").path) } ?? candidates[0]
    }

    public static func lengthprefTrain() -> URL { lengthprefDirectory().appendingPathComponent("train.jsonl") }
    static func lengthprefDev() -> URL { lengthprefDirectory().appendingPathComponent("dev.jsonl") }
}
