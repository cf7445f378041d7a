import Foundation

/// Linear warm-up, cosine decay, constant floor: nanoGPT's `get_lr` (train.py), step for step.
///
/// With W = `warmupSteps`, T = `totalSteps`, floor = `peak * floorFraction`:
/// - `step < W`:        lr = peak · (step + 1) / (W + 1). nanoGPT's convention: step 0 already
///                      moves (peak / (W + 1)), and the ramp meets the peak one step later, at W.
/// - `W ≤ step < T`:    lr = floor + ½ (1 + cos(π · (step − W) / (T − W))) · (peak − floor);
///                      the peak exactly at `step == W`, (peak + floor) / 2 half-way.
/// - `step ≥ T`:        lr = floor (the cosine ends there too, so the curve is continuous).
///
/// `step` is the number of updates already applied, i.e. the step about to be taken
/// (`AdamW.step`). Without warm-up (W = 0) step 0 gets the peak. `T ≤ W` is rejected by
/// `validate()`; `rate(at:)` still answers (the floor from W on) rather than dividing by zero.
public struct LearningRateSchedule: Codable, Sendable, Equatable {
    /// The learning rate at the end of warm-up.
    public var peak: Float
    /// Number of warm-up steps; 0 starts at the peak.
    public var warmupSteps: Int
    /// The step at which the cosine reaches the floor (nanoGPT's `lr_decay_iters`).
    public var totalSteps: Int
    /// The floor as a fraction of the peak: min lr = peak · floorFraction (nanoGPT uses 0.1).
    public var floorFraction: Float

    /// Hugging Face-style keys, as they appear in a checkpoint's `config.json`.
    enum CodingKeys: String, CodingKey {
        case peak = "learning_rate"
        case warmupSteps = "warmup_steps"
        case totalSteps = "total_steps"
        case floorFraction = "min_lr_ratio"
    }

    public init(peak: Float, warmupSteps: Int, totalSteps: Int, floorFraction: Float = 0.1) {
        self.peak = peak
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.floorFraction = floorFraction
    }

    /// The same rate at every step (no warm-up, floor = peak).
    public static func constant(_ rate: Float) -> LearningRateSchedule {
        LearningRateSchedule(peak: rate, warmupSteps: 0, totalSteps: 0, floorFraction: 1)
    }

    /// Decodes and validates, so a bad `config.json` fails on load rather than mid-training.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        peak = try c.decode(Float.self, forKey: .peak)
        warmupSteps = try c.decodeIfPresent(Int.self, forKey: .warmupSteps) ?? 0
        totalSteps = try c.decode(Int.self, forKey: .totalSteps)
        floorFraction = try c.decodeIfPresent(Float.self, forKey: .floorFraction) ?? 0.1
        try validate()
    }

    /// Throws `OptimizerError.invalidSchedule` naming the first field out of range.
    public func validate() throws {
        func fail(_ field: CodingKeys, _ value: String, _ expected: String) -> OptimizerError {
            .invalidSchedule(key: field.rawValue, value: value, expected: expected)
        }
        guard peak.isFinite && peak >= 0 else { throw fail(.peak, "\(peak)", "a finite value ≥ 0") }
        guard warmupSteps >= 0 else { throw fail(.warmupSteps, "\(warmupSteps)", "≥ 0") }
        guard totalSteps >= warmupSteps else {
            throw fail(.totalSteps, "\(totalSteps)", "≥ warmup_steps (\(warmupSteps))")
        }
        guard floorFraction >= 0 && floorFraction <= 1 else {
            throw fail(.floorFraction, "\(floorFraction)", "in [0, 1]")
        }
    }

    /// The learning rate for the update that follows `step` updates (negative steps count as 0).
    public func rate(at step: Int) -> Float {
        let step = max(step, 0)
        let peak = Double(self.peak)
        let floor = peak * Double(floorFraction)
        if step < warmupSteps {
            return Float(peak * Double(step + 1) / Double(warmupSteps + 1))
        }
        if step >= totalSteps { return Float(floor) }
        // Here warmupSteps ≤ step < totalSteps, so the denominator is positive.
        let progress = Double(step - warmupSteps) / Double(totalSteps - warmupSteps)
        let coefficient = 0.5 * (1 + Foundation.cos(Double.pi * progress))
        return Float(floor + coefficient * (peak - floor))
    }
}
