import Foundation
import PRMCore
import PRMModel

/// The model facts `info` reports, read at start-up and at each reload.
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
    /// `ModelFingerprint`, and when the model was loaded (ISO 8601, UTC).
    let fingerprint: String
    let loadedAt: String
    /// The backbone's inference precision (`--precision`).
    let precision: Precision
    /// At int8, the products run at int8 (`--int8-products`; the others run at bf16).
    let int8Products: Set<MatrixProduct>

    init(_ model: RewardModel, users: Int, path: String, fingerprint: String) {
        self.path = path
        self.fingerprint = fingerprint
        loadedAt = ISO8601DateFormatter().string(from: Date())
        backbone = model.backbone.modelType
        aggregator = model.config.aggregator.rawValue
        userModel = model.config.userModel.kind.rawValue
        self.users = users
        maxLength = model.config.maxLength
        hiddenSize = model.backbone.hiddenSize
        template = model.config.template.rawValue
        precision = model.backbone.inferencePrecision
        int8Products = Int8Plan.products
    }

    func write(_ w: inout JSONWriter) {
        w.object(["path": path, "backbone": backbone, "aggregator": aggregator, "user_model": userModel,
                  "users": users, "max_length": maxLength, "hidden_size": hiddenSize, "template": template,
                  "fingerprint": fingerprint, "loaded_at": loadedAt, "precision": precision.rawValue,
                  "precision_plan": Int8Plan.describe(precision, products: int8Products)])
    }
}
