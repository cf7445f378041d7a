import Foundation
import PRMCore
import PRMModel
import PRMScoring

/// What a reward model's pooled state h carries *linearly* about observable properties of replies
/// (`ReplyProperties`): `prm probe`'s measurement (issue 16, item 1).
///
/// With the linear head a user's reward is ⟨e_u, h⟩, so a user whose preference is a weighted sum
/// of properties can be represented exactly only if h carries them linearly; a ridge probe from h
/// to each property, scored on replies it was not fitted on, measures how far it does.
///
/// The protocol: unique (prompt, reply) pairs from the comparisons' chosen and rejected sides,
/// sampled whole prompts at a time so a comparison's two replies stay together; h of each through
/// the production path (`InputPreparer`'s window, `RewardModel.pooledStates`) for the generic
/// user 0 (the linear head's h does not depend on the user; the soft prompt's does, and user 0 is
/// what unseen people get). Replies are split in two halves by prompt, because h pools the prompt
/// too and a prompt's replies in both halves would let the probe recognise the prompt. h is
/// standardised with the fitting half's means and deviations; for each property λ is chosen by
/// k-fold cross-validation on the fitting half (folds by prompt as well), the ridge fit on the
/// whole fitting half, and it is scored on the other half: R² for the log word count, and for the
/// yes/no properties the ridge prediction of 0/1 thresholded at 0.5 (a linear probability model,
/// not logistic regression): accuracy, balanced accuracy, the base rate, and the ROC area of the
/// unthresholded prediction.
public enum RepresentationProbe {
    public struct Settings: Sendable, Equatable {
        public var maxReplies = 1200
        public var seed: UInt64 = 42
        /// Cross-validation folds on the fitting half.
        public var folds = 5
        /// The λ grid, for h standardised to unit variance per dimension.
        public var lambdas: [Double] = [0.01, 0.1, 1, 10, 100, 1_000, 10_000, 100_000]

        public init() {}
    }

    /// One reply under its prompt: the unit a probe sees.
    public struct Reply: Hashable, Sendable {
        public var prompt: String
        public var text: String
    }

    /// Unique replies of `comparisons` in file order (chosen before rejected), at most
    /// `maxReplies`: whole prompts drawn in a seeded random order while their replies still fit.
    public static func replies(from comparisons: [Comparison], maxReplies: Int, seed: UInt64) -> [Reply] {
        var order: [Reply: Int] = [:]
        var byPrompt: [String: [Reply]] = [:]
        var prompts: [String] = []
        for c in comparisons {
            for text in [c.chosen, c.rejected] {
                let reply = Reply(prompt: c.prompt, text: text)
                guard order[reply] == nil else { continue }
                order[reply] = order.count
                if byPrompt[c.prompt] == nil { prompts.append(c.prompt) }
                byPrompt[c.prompt, default: []].append(reply)
            }
        }
        guard order.count > maxReplies else { return order.sorted { $0.value < $1.value }.map(\.key) }
        var rng = RandomSource(seed: seed)
        var chosen: [Reply] = []
        for prompt in prompts.shuffled(using: &rng) {
            let group = byPrompt[prompt] ?? []
            if chosen.count + group.count <= maxReplies { chosen += group }
            if chosen.count == maxReplies { break }
        }
        return chosen.sorted { order[$0] ?? 0 < order[$1] ?? 0 }
    }

    /// h for each reply as the model scores it for the generic user, (N, C) row-major, and how
    /// many replies the window cut. Runs in chunks so `progress` (counting replies) moves.
    public static func pooledStates(model: RewardModel, users: UserTable, replies: [Reply], tokensPerBatch: Int = 8192,
                                    progress: ProgressBar? = nil) -> (states: [Float], truncated: Int) {
        let C = model.backbone.hiddenSize
        let prepared = InputPreparer(model: model, users: users)
            .prepare(replies.map { ScoringItem(userID: nil, prompt: $0.prompt, response: $0.text) })
        var states = [Float](repeating: 0, count: replies.count * C)
        let chunk = 64
        states.withUnsafeMutableBufferPointer { out in
            guard let base = out.baseAddress else { return }  // no replies
            for start in stride(from: 0, to: prepared.count, by: chunk) {
                let part = prepared[start..<min(start + chunk, prepared.count)]
                model.pooledStates(part.map(\.sequence), tokensPerBatch: max(tokensPerBatch, model.config.maxLength),
                                   into: base + start * C)
                progress?.advance(by: part.count)
            }
        }
        return (states, prepared.filter(\.truncated).count)
    }

    /// Fits and scores every property's probe. `states` is (replies.count, C); `comparisons`
    /// give the held-out pairs the word-count probe is asked to order.
    public static func run(states: [Float], width C: Int, replies: [Reply], comparisons: [Comparison],
                           settings: Settings = Settings()) throws -> ProbeReport {
        let N = replies.count
        precondition(states.count == N * C, "states must be (replies, C)")
        guard N >= 4 else { throw TrainingError("a probe needs at least 4 distinct replies, got \(N)") }
        let (fit, test, folds, prompts) = split(replies, settings: settings)
        guard prompts >= 2 else { throw TrainingError("a probe needs replies under at least 2 prompts, got \(prompts)") }
        guard fit.count >= settings.folds, !test.isEmpty else {
            throw TrainingError("too few replies to probe: \(fit.count) to fit on (at least \(settings.folds)) and \(test.count) to test")
        }

        let (fitX, testX) = standardised(states, width: C, fit: fit, test: test)
        let properties = replies.map { ReplyProperties($0.text) }
        var results: [ProbeReport.PropertyResult] = []
        var wordCountPredictions: [Double] = []
        for property in ReplyProperties.Property.allCases {
            let y = fit.map { properties[$0][property] }, truth = test.map { properties[$0][property] }
            let validation = try RidgeRegression.crossValidate(x: fitX, y: y, rows: fit.count, columns: C,
                                                               lambdas: settings.lambdas, folds: folds)
            let probe = try RidgeRegression.fit(x: fitX, y: y, rows: fit.count, columns: C, lambda: validation.best)
            let predicted = probe.predict(x: testX, rows: test.count)
            var result = ProbeReport.PropertyResult(property: property, lambda: probe.lambda, fitCount: fit.count, testCount: test.count)
            switch property.kind {
            case .continuous:
                result.rSquared = RidgeRegression.rSquared(predicted: predicted, actual: truth)
                result.fitRSquared = RidgeRegression.rSquared(predicted: probe.predict(x: fitX, rows: fit.count), actual: y)
                if property == .logWordCount { wordCountPredictions = predicted }
            case .binary:
                let classified = zip(predicted, truth).map { (predicted: $0 >= 0.5, actual: $1 >= 0.5) }
                let positives = classified.filter(\.actual), negatives = classified.filter { !$0.actual }
                result.accuracy = Double(classified.filter { $0.predicted == $0.actual }.count) / Double(classified.count)
                result.baseRate = Double(positives.count) / Double(classified.count)
                if !positives.isEmpty && !negatives.isEmpty {
                    let truePositive = Double(positives.filter(\.predicted).count) / Double(positives.count)
                    let trueNegative = Double(negatives.filter { !$0.predicted }.count) / Double(negatives.count)
                    result.balancedAccuracy = (truePositive + trueNegative) / 2
                }
                result.auc = areaUnderROC(scores: predicted, positive: truth.map { $0 >= 0.5 })
            }
            results.append(result)
        }
        let ordering = pairOrdering(replies: replies, test: test, predicted: wordCountPredictions,
                                    wordCounts: properties.map(\.wordCount), comparisons: comparisons)
        return ProbeReport(replies: N, prompts: prompts, settings: settings, results: results, pairOrdering: ordering)
    }

    /// The two halves, by prompt: prompts in a seeded order, each to the half with fewer replies
    /// so far. Returns reply indices of each half, the cross-validation fold of each fitting
    /// reply (its prompt's), and the number of prompts.
    static func split(_ replies: [Reply], settings: Settings) -> (fit: [Int], test: [Int], folds: [Int], prompts: Int) {
        var rng = RandomSource(seed: settings.seed &+ 1)
        var prompts: [String] = []
        var seen = Set<String>()
        for reply in replies where seen.insert(reply.prompt).inserted { prompts.append(reply.prompt) }
        prompts.shuffle(using: &rng)
        let repliesPerPrompt = Dictionary(grouping: replies, by: \.prompt).mapValues(\.count)
        var foldOfPrompt: [String: Int] = [:]
        var fitCount = 0, testCount = 0
        for prompt in prompts {
            let count = repliesPerPrompt[prompt] ?? 0
            if fitCount <= testCount {
                foldOfPrompt[prompt] = foldOfPrompt.count % settings.folds
                fitCount += count
            } else {
                testCount += count
            }
        }
        let fit = replies.indices.filter { foldOfPrompt[replies[$0].prompt] != nil }
        let test = replies.indices.filter { foldOfPrompt[replies[$0].prompt] == nil }
        return (fit, test, fit.map { foldOfPrompt[replies[$0].prompt] ?? 0 }, prompts.count)
    }

    /// (fit, C) and (test, C) row-major in double precision, each dimension of h centred and
    /// scaled by the fitting half's mean and standard deviation (a constant dimension is only centred).
    static func standardised(_ states: [Float], width C: Int, fit: [Int], test: [Int]) -> (fit: [Double], test: [Double]) {
        var mean = [Double](repeating: 0, count: C), scale = [Double](repeating: 0, count: C)
        for n in fit { for c in 0..<C { mean[c] += Double(states[n * C + c]) } }
        for c in 0..<C { mean[c] /= Double(fit.count) }
        for n in fit { for c in 0..<C { let d = Double(states[n * C + c]) - mean[c]; scale[c] += d * d } }
        for c in 0..<C {
            let deviation = (scale[c] / Double(fit.count)).squareRoot()
            scale[c] = deviation > 1e-12 ? 1 / deviation : 1
        }
        func rows(_ indices: [Int]) -> [Double] {
            var out = [Double](repeating: 0, count: indices.count * C)
            for (k, n) in indices.enumerated() { for c in 0..<C { out[k * C + c] = (Double(states[n * C + c]) - mean[c]) * scale[c] } }
            return out
        }
        return (rows(fit), rows(test))
    }

    /// The probability that a random positive scores above a random negative (ties count half):
    /// the Mann–Whitney form of the ROC curve's area. Nil without both classes.
    static func areaUnderROC(scores: [Double], positive: [Bool]) -> Double? {
        let positives = positive.filter { $0 }.count, negatives = positive.count - positives
        guard positives > 0, negatives > 0 else { return nil }
        // Average ranks (1-based) over ties, then U = Σ ranks of positives − P(P+1)/2.
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSum = 0.0, start = 0
        while start < order.count {
            var end = start
            while end + 1 < order.count && scores[order[end + 1]] == scores[order[start]] { end += 1 }
            let rank = Double(start + end + 2) / 2
            for k in start...end where positive[order[k]] { rankSum += rank }
            start = end + 1
        }
        let p = Double(positives)
        return (rankSum - p * (p + 1) / 2) / (p * Double(negatives))
    }

    /// The distinct reply pairs of `comparisons` with both replies in the test half and different
    /// word counts, and how many the word-count probe orders as the true counts do.
    static func pairOrdering(replies: [Reply], test: [Int], predicted: [Double], wordCounts: [Int],
                             comparisons: [Comparison]) -> ProbeReport.PairOrdering {
        var position: [Reply: Int] = [:]
        for (k, n) in test.enumerated() { position[replies[n]] = k }
        var pairs = Set<[Int]>(), ties = 0, agreeing = 0
        for c in comparisons {
            guard let a = position[Reply(prompt: c.prompt, text: c.chosen)], let b = position[Reply(prompt: c.prompt, text: c.rejected)],
                  pairs.insert([min(a, b), max(a, b)]).inserted else { continue }
            let trueOrder = wordCounts[test[a]] - wordCounts[test[b]]
            if trueOrder == 0 { ties += 1; continue }
            if (predicted[a] - predicted[b]) * Double(trueOrder) > 0 { agreeing += 1 }
        }
        return ProbeReport.PairOrdering(pairs: pairs.count - ties, agreeing: agreeing, ties: ties)
    }
}
