import PRMCore
import PRMModel

/// Requests whose string prompt is not written as the checkpoint's template writes prompts (an
/// hh model given a prompt without a "Human:" turn): scored as sent, but counted, so operators see
/// a client that sends the wrong format (issue 17: such scores differ silently).
struct PromptFormatCount: Sendable {
    let template: TextTemplate
    let offTemplate: Int

    func write(_ w: inout JSONWriter) {
        w.key("prompts")
        w.object(["template": template.rawValue, "off_template": offTemplate])
    }
}
