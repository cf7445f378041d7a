import Foundation
import PRMCore

/// A Hugging Face `…ForSequenceClassification` reward model's `score` head: a (1, C) matrix on the
/// last token's state, without bias. prm takes it as the generic user's reward head, so such a
/// model scores as it did for users prm does not know, and users are learned on top of it.
enum ClassificationHead {
    static let tensorName = "score.weight"

    /// Puts the file's score head into `model` when the file has one: the soft prompt's head (bias
    /// 0), or the generic user's vector of the linear head (every centre of a cluster user model,
    /// whose generic user is a mixture of them). Returns whether there was one.
    static func adopt(from url: URL, into model: RewardModel) throws -> Bool {
        let file = try SafetensorsFile(contentsOf: url)
        guard file.contains(tensorName) else { return false }
        let C = model.backbone.hiddenSize
        var score = [Float](repeating: 0, count: C)
        try score.withUnsafeMutableBufferPointer { try file.read(tensorName, into: $0.baseAddress!, shape: [1, C]) }
        let p = model.parameters
        if let head = model.headWeight {
            p.value(head).update(from: score, count: C)
            if let bias = model.headBias { p.value(bias)[0] = 0 }
        } else if let table = model.userModel.table {
            let rows = model.userModel.config.kind == .cluster ? p.entry(table).count / C : 1
            for r in 0..<rows { (p.value(table) + r * C).update(from: score, count: C) }
        }
        p.markChanged()
        return true
    }
}
