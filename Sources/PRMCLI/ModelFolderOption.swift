import Foundation
import PRMModel

extension ParsedArguments {
    /// The pretrained backbone folder given with `option` (`--model`, `--backbone`), else the
    /// installed default (`ModelLocator.defaultBackbone`: $PRM_MODEL_DIR, then models/ beside
    /// the binary or the working directory). Shared by embed, train and the benchmarks.
    public func modelFolder(_ option: String = "model") throws -> URL {
        if isSet(option), let path = string(option) { return URL(fileURLWithPath: path) }
        return try ModelLocator.defaultBackbone()
    }
}
