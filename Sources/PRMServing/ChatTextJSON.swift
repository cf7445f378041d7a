import PRMCore
import PRMModel

/// A prompt or reply as protocol v1 writes it: a string, a list of `{"role", "content"}` messages
/// (a prompt), or one message (a reply). `RequestFields` reads what this writes.
public enum ChatTextJSON {
    public static func prompt(_ prompt: ChatText, _ w: inout JSONWriter) {
        switch prompt {
        case .text(let text): w.string(text)
        case .messages(let messages):
            w.beginArray()
            for message in messages { write(message, &w) }
            w.endArray()
        }
    }

    /// A reply's one assistant message as an object (`RequestFields.reply` gives replies one).
    public static func reply(_ reply: ChatText, _ w: inout JSONWriter) {
        switch reply {
        case .text(let text): w.string(text)
        case .messages(let messages):
            for message in messages.prefix(1) { write(message, &w) }
        }
    }

    private static func write(_ message: ChatMessage, _ w: inout JSONWriter) {
        w.object(["role": message.role.rawValue, "content": message.content])
    }
}
