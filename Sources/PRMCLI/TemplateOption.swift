import Foundation
import PRMModel

/// `--template` on the commands that score with a model (score, eval, adapt, serve): how a
/// `…ForSequenceClassification` folder served as it is writes text, in place of its own chat
/// template. A prm checkpoint writes text in the template it was trained with (recorded in its
/// config.json), so there it is refused (`Checkpoint.load`).
public enum TemplateOption {
    public static let spec = OptionSpec.value(
        "template", placeholder: "NAME",
        help: "For a …ForSequenceClassification folder served as it is: write prompt and reply as \(TextTemplate.allCases.map(\.rawValue).joined(separator: " or ")) "
            + "instead of in the folder's own chat template (tokenizer_config.json's chat_template or chat_template.jinja, applied as "
            + "apply_chat_template does; a folder without one takes text as given, plain). Not for a prm checkpoint, which keeps its own.")
}

extension ParsedArguments {
    /// The `--template` given, nil when none.
    public func servedTemplate() throws -> TextTemplate? {
        guard isSet("template") else { return nil }
        let name = string("template", default: "")
        guard let template = TextTemplate(rawValue: name) else {
            throw usageError("--template must be one of \(TextTemplate.allCases.map(\.rawValue).joined(separator: ", ")); got '\(name)'")
        }
        return template
    }
}
