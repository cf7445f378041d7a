import PRMCore
import PRMModel

/// The model facts `info` reports, read once at start-up.
struct ModelFacts: Sendable {
    let path: String
    let backbone: String
    let aggregator: String
    let userModel: String
    let users: Int
    let maxLength: Int
    let hiddenSize: Int
    /// How chat messages become text (`TextTemplate`).
    let template: String
    /// The backbone's inference precision (`--precision`).
    let precision: String

    init(_ model: RewardModel, users: Int, path: String) {
        self.path = path
        backbone = model.backbone.modelType
        aggregator = model.config.aggregator.rawValue
        userModel = model.config.userModel.kind.rawValue
        self.users = users
        maxLength = model.config.maxLength
        hiddenSize = model.backbone.hiddenSize
        template = model.config.template.rawValue
        precision = model.backbone.inferencePrecision.rawValue
    }

    func write(_ w: inout JSONWriter) {
        w.object(["path": path, "backbone": backbone, "aggregator": aggregator, "user_model": userModel,
                  "users": users, "max_length": maxLength, "hidden_size": hiddenSize, "template": template,
                  "precision": precision])
    }
}
