import Foundation
import PRMCore

/// What `RepresentationProbe.run` measured: one row per reply property on the held-out half, and
/// how the word-count probe orders held-out comparison pairs. `table()` is `prm probe`'s stdout,
/// `json()` its --json file.
public struct ProbeReport: Sendable {
    public struct PropertyResult: Sendable {
        public var property: ReplyProperties.Property
        /// The ridge penalty cross-validation chose.
        public var lambda: Double
        public var fitCount: Int
        public var testCount: Int
        /// Continuous properties: R² on the held-out half, and on the fitting half (how far the
        /// probe overfits).
        public var rSquared: Double?
        public var fitRSquared: Double?
        /// Binary properties: the thresholded ridge prediction's accuracy; balanced accuracy (the
        /// mean of the true-positive and true-negative rates; nil when the held-out half has one
        /// class only); the share of held-out replies that have the property.
        public var accuracy: Double?
        public var balancedAccuracy: Double?
        public var baseRate: Double?
        /// Binary properties: the area under the ROC curve of the probe's raw prediction, free of
        /// the 0.5 threshold (which a rare property never crosses, so its balanced accuracy is 0.5
        /// even when h ranks the replies that have it first); nil with one class only.
        public var auc: Double?

        public init(property: ReplyProperties.Property, lambda: Double, fitCount: Int, testCount: Int) {
            self.property = property
            self.lambda = lambda
            self.fitCount = fitCount
            self.testCount = testCount
        }

        /// Always guessing the more common class.
        public var majorityAccuracy: Double? { baseRate.map { max($0, 1 - $0) } }
    }

    /// Held-out comparison pairs (distinct reply pairs, both replies in the test half) ordered by
    /// the log-word-count probe as by their true word counts; pairs of equal counts are left out.
    public struct PairOrdering: Sendable {
        public var pairs: Int
        public var agreeing: Int
        public var ties: Int
        public var fraction: Double? { pairs > 0 ? Double(agreeing) / Double(pairs) : nil }
    }

    public var replies: Int
    public var prompts: Int
    public var settings: RepresentationProbe.Settings
    public var results: [PropertyResult]
    public var pairOrdering: PairOrdering
    /// Filled in by the caller: what was probed.
    public var model = ""
    public var modelKind = ""
    public var aggregator = ""
    public var data = ""
    public var width = 0
    public var truncated = 0

    public init(replies: Int, prompts: Int, settings: RepresentationProbe.Settings, results: [PropertyResult], pairOrdering: PairOrdering) {
        self.replies = replies
        self.prompts = prompts
        self.settings = settings
        self.results = results
        self.pairOrdering = pairOrdering
    }

    public func table() -> String {
        func cell(_ value: Double?, _ format: String = "%.3f") -> String { value.map { String(format: format, $0) } ?? "-" }
        let header = ["property", "kind", "lambda", "R2 / acc", "bal acc", "AUC", "base rate", "n fit", "n test"]
        var rows = [header]
        for r in results {
            let main = r.property.kind == .continuous ? "R2 " + cell(r.rSquared) : "acc " + cell(r.accuracy)
            rows.append([r.property.rawValue, r.property.kind.rawValue, String(format: "%g", r.lambda), main,
                         cell(r.balancedAccuracy), cell(r.auc), cell(r.baseRate), "\(r.fitCount)", "\(r.testCount)"])
        }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        var lines = rows.map { row in
            row.enumerated().map { column, text in
                column < 2 ? text.padding(toLength: widths[column], withPad: " ", startingAt: 0)
                           : String(repeating: " ", count: widths[column] - text.count) + text
            }.joined(separator: "  ")
        }
        lines.append("")
        if let fraction = pairOrdering.fraction {
            lines.append(String(format: "pair ordering: the log_word_count probe orders %.1f%% of %d held-out comparison pairs as their word counts do",
                                100 * fraction, pairOrdering.pairs) + " (\(pairOrdering.ties) pairs of equal counts left out)")
        } else {
            lines.append("pair ordering: no held-out comparison pair has both replies in the test half")
        }
        lines.append("\(replies) replies under \(prompts) prompts (\(truncated) cut by the window), split by prompt; "
                     + "ridge on standardised h (\(width) dims), lambda by \(settings.folds)-fold CV on the fitting half; "
                     + "binary properties: ridge on 0/1 thresholded at 0.5")
        return lines.joined(separator: "\n")
    }

    public func json() -> String {
        var w = JSONWriter()
        w.beginObject()
        w.key("model"); w.string(model)
        w.key("model_kind"); w.string(modelKind)
        w.key("aggregator"); w.string(aggregator)
        w.key("data"); w.string(data)
        w.key("width"); w.number(width)
        w.key("replies"); w.number(replies)
        w.key("prompts"); w.number(prompts)
        w.key("truncated"); w.number(truncated)
        w.key("seed"); w.number(Int(settings.seed))
        w.key("folds"); w.number(settings.folds)
        w.key("lambdas"); w.beginArray(); for l in settings.lambdas { w.number(l) }; w.endArray()
        w.key("binary_probe"); w.string("ridge regression on 0/1 targets, thresholded at 0.5")
        w.key("properties")
        w.beginArray()
        func optional(_ key: String, _ value: Double?) {
            w.key(key)
            if let value { w.number(value) } else { w.null() }
        }
        for r in results {
            w.beginObject()
            w.key("property"); w.string(r.property.rawValue)
            w.key("kind"); w.string(r.property.kind.rawValue)
            w.key("meaning"); w.string(r.property.meaning)
            w.key("lambda"); w.number(r.lambda)
            w.key("n_fit"); w.number(r.fitCount)
            w.key("n_test"); w.number(r.testCount)
            switch r.property.kind {
            case .continuous:
                optional("r2", r.rSquared)
                optional("r2_fit", r.fitRSquared)
            case .binary:
                optional("accuracy", r.accuracy)
                optional("balanced_accuracy", r.balancedAccuracy)
                optional("auc", r.auc)
                optional("base_rate", r.baseRate)
                optional("majority_accuracy", r.majorityAccuracy)
            }
            w.endObject()
        }
        w.endArray()
        w.key("pair_ordering")
        w.beginObject()
        w.key("probe"); w.string(ReplyProperties.Property.logWordCount.rawValue)
        w.key("pairs"); w.number(pairOrdering.pairs)
        w.key("agreeing"); w.number(pairOrdering.agreeing)
        w.key("ties_left_out"); w.number(pairOrdering.ties)
        optional("fraction", pairOrdering.fraction)
        w.endObject()
        w.endObject()
        return w.text
    }
}
