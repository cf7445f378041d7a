import Foundation
import PRMCore

/// A Hugging Face `…ForSequenceClassification` reward model's `score` head: a (1, C) matrix on the
/// last token's state, without bias. prm takes it as the generic user's reward head, so such a
/// model scores as it did for users prm does not know, and users are learned on top of it.
public enum ClassificationHead {
    static let tensorName = "score.weight"
    /// BertForSequenceClassification's head: it reads BERT's pooler (a tanh layer on [CLS]), which
    /// prm's BERT does not load, so such a folder is named in the error rather than half-served.
    static let bertClassifierName = "classifier.weight"
    /// The longest window of a folder served as it is, whatever its backbone's positions: a
    /// request's tokens past it are trimmed from the prompt's left, as a trained model's are.
    public static let servedMaxLength = 2048

    /// Whether `file` holds a score head, checked to be one reward on the backbone's `C` channels:
    /// a head of several labels is a classifier, and a head of another width another backbone's.
    static func isPresent(in file: SafetensorsFile, width C: Int) throws -> Bool {
        guard let info = file.info(tensorName) else { return false }
        guard info.shape.count == 2, info.shape[1] == C else {
            throw ModelError(file: file.url, "tensor '\(tensorName)' has shape \(info.shape), but the backbone's hidden size is \(C) "
                             + "(config.json): a score head is [1, \(C)]")
        }
        guard info.shape[0] == 1 else {
            throw ModelError(file: file.url, "tensor '\(tensorName)' has \(info.shape[0]) rows (num_labels \(info.shape[0])); "
                             + "a reward model's score head has num_labels 1")
        }
        return true
    }

    /// Puts the file's score head into `model` when the file has one: the soft prompt's head (bias
    /// 0), or the generic user's vector of the linear head (every centre of a cluster user model,
    /// whose generic user is a mixture of them), divided by the model's pooled scale; the reply counts
    /// start muted, so the linear head's generic user scores as the folder's model. Returns whether there was one.
    static func adopt(from url: URL, into model: RewardModel) throws -> Bool {
        let file = try SafetensorsFile(contentsOf: url)
        let C = model.backbone.hiddenSize
        guard try isPresent(in: file, width: C) else { return false }
        var score = [Float](repeating: 0, count: C)
        try score.withUnsafeMutableBufferPointer { try file.read(tensorName, into: $0.baseAddress!, shape: [1, C]) }
        // The head reads the pooled state times the model's scale; the folder's head read it unscaled.
        if model.config.pooledScale != 1 { score = score.map { $0 / model.config.pooledScale } }
        let p = model.parameters
        if let head = model.headWeight {
            p.value(head).update(from: score, count: C)
            if let bias = model.headBias { p.value(bias)[0] = 0 }
        } else if let table = model.userModel.table {
            let rows = model.userModel.config.kind == .cluster ? p.entry(table).count / C : 1
            for r in 0..<rows { (p.value(table) + r * C).update(from: score, count: C) }
        }
        model.replyCounts?.mute()
        p.markChanged()
        return true
    }

    /// Throws unless `folder`, which has no prm section in its config.json, is a
    /// `…ForSequenceClassification` folder whose score head prm reads: weights present, a score
    /// head. `use` says what the folder was given for.
    static func requireScoreHead(in folder: URL, for use: String) throws {
        let weights = folder.appendingPathComponent("model.safetensors")
        guard FileManager.default.fileExists(atPath: weights.path) else {
            throw ModelError(file: folder, "no model.safetensors: \(use) needs a folder with weights")
        }
        let file = try SafetensorsFile(contentsOf: weights)
        guard file.contains(tensorName) else {
            let bert = file.contains(bertClassifierName)
                ? " (its '\(bertClassifierName)' is BertForSequenceClassification's head on BERT's pooler, which prm does not read)" : ""
            throw ModelError(file: folder.appendingPathComponent("config.json"), "missing field 'prm' and model.safetensors has no "
                             + "'\(tensorName)': neither a prm reward-model checkpoint nor a …ForSequenceClassification reward model\(bert); "
                             + "a plain backbone folder goes to prm train --backbone")
        }
    }

    /// The folder's own chat template (nil: it has none); one prm does not render is refused with
    /// the way out.
    static func chatTemplate(of folder: URL) throws -> TextTemplate? {
        do {
            return try ChatTemplate.ofFolder(folder).map(TextTemplate.chat)
        } catch let error as ModelError {
            throw ModelError("\(error); --template plain scores the text as sent (in the model's own format), --template hh in hh turns")
        }
    }

    /// The folder served as it is (`Checkpoint.load` of a folder without prm's section): a linear
    /// head whose generic user is the score head, individual users and none trained yet, so every
    /// user scores as the folder's model does until `adapt` fits one. Text is written in the
    /// folder's own chat template (`ChatTemplate.ofFolder`), as its model card scores with
    /// `apply_chat_template`; a folder without one takes text as given (template plain).
    /// `template` overrides that choice (`--template`). The window is the backbone's, up to
    /// `servedMaxLength` tokens.
    static func servedAsIs(_ folder: URL, template: TextTemplate? = nil) throws -> RewardModel {
        try requireScoreHead(in: folder, for: "a reward model served as it is")
        var scratch = Parameters.Layout()
        let positions = try Backbones.make(config: folder.appendingPathComponent("config.json"), layout: &scratch).maxPositions
        let written = try template ?? chatTemplate(of: folder) ?? .plain
        let config = RewardModelConfig(aggregator: .linearHead, userModel: UserModelConfig(kind: .individual, tokens: 1, users: 0),
                                       maxLength: min(positions, servedMaxLength), replyCounts: 0, interactions: 0, template: written)
        return try RewardModel.pretrained(backbone: folder, config: config, seed: 0)
    }
}
