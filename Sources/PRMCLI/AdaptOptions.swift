import Foundation
import PRMTraining

/// The options of fitting a new user (`prm adapt`, and `prm eval --few-shot`), declared and read
/// in one place; their defaults are `AdaptSettings()`'s.
enum AdaptOptions {
    static let defaults = AdaptSettings()

    static let all: [OptionSpec] = [
        .value("adapt-steps", placeholder: "N", help: "Soft prompt: optimizer steps per adapted user.", default: "\(defaults.steps)"),
        .value("adapt-lr", placeholder: "LR", help: "Soft prompt: learning rate of the adapted user's tokens.", default: "\(defaults.learningRate)"),
        .value("prior-scale", placeholder: "TAU", help: "Width of an adapted user's prior (its covariance times TAU).",
               default: "\(defaults.priorScale)"),
    ]

    static func settings(_ arguments: ParsedArguments) throws -> AdaptSettings {
        var settings = AdaptSettings()
        if let steps = try arguments.int("adapt-steps") { settings.steps = steps }
        if let lr = try arguments.double("adapt-lr") { settings.learningRate = Float(lr) }
        if let tau = try arguments.double("prior-scale") { settings.priorScale = tau }
        do { try settings.validate() } catch let error as TrainingError { throw arguments.usageError(error.description) }
        return settings
    }
}
