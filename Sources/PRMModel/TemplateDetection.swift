/// What `TextTemplate.detect` found in a training set: the template, and the share of prompts
/// written in hh turns that decided it (logged by `prm train`).
public struct TemplateDetection: Sendable, Equatable {
    public let template: TextTemplate
    public let hhShare: Double
}
