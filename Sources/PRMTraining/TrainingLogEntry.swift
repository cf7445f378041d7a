/// One logging step, written to the JSON log. Non-finite numbers are written as null (JSON has
/// no NaN), so a diverging run still leaves its line in the log.
public struct TrainingLogEntry: Codable, Sendable {
    public var step: Int
    public var epoch: Double
    public var loss: Float
    public var accuracy: Float
    public var learningRate: Float
    public var userLearningRate: Float
    public var gradientNorm: Float
    public var tokensPerSecond: Double
    public var elapsedSeconds: Double
    /// Accuracy on the held-out comparisons (the --dev file, or the --val-fraction split).
    public var devAccuracy: Float?
    /// Updates skipped so far because the loss or the gradient norm was not finite.
    public var skippedUpdates: Int
    /// Seconds this process spent summing gradients over the data-parallel ranks since this
    /// run started (the communication share of `elapsedSeconds`); absent for a single process.
    public var allreduceSeconds: Double?

    enum CodingKeys: String, CodingKey {
        case step, epoch, loss, accuracy, learningRate = "learning_rate", userLearningRate = "user_learning_rate"
        case gradientNorm = "gradient_norm", tokensPerSecond = "tokens_per_second", elapsedSeconds = "elapsed_seconds"
        case devAccuracy = "dev_accuracy", skippedUpdates = "skipped_updates", allreduceSeconds = "allreduce_seconds"
    }

    public init(step: Int, epoch: Double, loss: Float, accuracy: Float, learningRate: Float, userLearningRate: Float,
                gradientNorm: Float, tokensPerSecond: Double, elapsedSeconds: Double, devAccuracy: Float? = nil, skippedUpdates: Int = 0,
                allreduceSeconds: Double? = nil) {
        self.step = step
        self.epoch = epoch
        self.loss = loss
        self.accuracy = accuracy
        self.learningRate = learningRate
        self.userLearningRate = userLearningRate
        self.gradientNorm = gradientNorm
        self.tokensPerSecond = tokensPerSecond
        self.elapsedSeconds = elapsedSeconds
        self.devAccuracy = devAccuracy
        self.skippedUpdates = skippedUpdates
        self.allreduceSeconds = allreduceSeconds
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func number<T: Decodable & FloatingPoint>(_ key: CodingKeys) throws -> T { try c.decodeIfPresent(T.self, forKey: key) ?? .nan }
        step = try c.decode(Int.self, forKey: .step)
        epoch = try number(.epoch)
        loss = try number(.loss)
        accuracy = try number(.accuracy)
        learningRate = try number(.learningRate)
        userLearningRate = try number(.userLearningRate)
        gradientNorm = try number(.gradientNorm)
        tokensPerSecond = try number(.tokensPerSecond)
        elapsedSeconds = try number(.elapsedSeconds)
        devAccuracy = try c.decodeIfPresent(Float.self, forKey: .devAccuracy)
        skippedUpdates = try c.decodeIfPresent(Int.self, forKey: .skippedUpdates) ?? 0
        allreduceSeconds = try c.decodeIfPresent(Double.self, forKey: .allreduceSeconds)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        func number<T: Encodable & FloatingPoint>(_ value: T, _ key: CodingKeys) throws {
            if value.isFinite { try c.encode(value, forKey: key) } else { try c.encodeNil(forKey: key) }
        }
        try c.encode(step, forKey: .step)
        try number(epoch, .epoch)
        try number(loss, .loss)
        try number(accuracy, .accuracy)
        try number(learningRate, .learningRate)
        try number(userLearningRate, .userLearningRate)
        try number(gradientNorm, .gradientNorm)
        try number(tokensPerSecond, .tokensPerSecond)
        try number(elapsedSeconds, .elapsedSeconds)
        if let devAccuracy { try number(devAccuracy, .devAccuracy) }
        try c.encode(skippedUpdates, forKey: .skippedUpdates)
        if let allreduceSeconds { try number(allreduceSeconds, .allreduceSeconds) }
    }
}
