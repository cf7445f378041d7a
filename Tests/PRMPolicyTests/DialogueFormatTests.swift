import Foundation
import XCTest
import PRMTestSupport
import PRMTokenizers
@testable import PRMPolicy

/// The dialogue format of data/policy/README.md on the committed vocabulary.
final class DialogueFormatTests: XCTestCase {
    func format() throws -> DialogueFormat {
        try DialogueFormat(tokenizer: TokenizerLoader.load(contentsOf: TinyPolicies.tokenizer), file: TinyPolicies.tokenizer)
    }

    func testTheVocabularyHasTheRoleTokensFirst() throws {
        let f = try format()
        XCTAssertEqual([f.human, f.assistant, f.end], [0, 1, 2])
        XCTAssertEqual(f.tokenizer.vocabularySize, 4096)
    }

    func testTurnsOfTheDataForm() {
        typealias Turn = DialogueFormat.Turn
        XCTAssertEqual(DialogueFormat.turns("Human: Hi there\n\nAssistant: Hello!\n\nHuman: Help me.\n\nAssistant:"),
                       [Turn(.human, "Hi there"), Turn(.assistant, "Hello!"), Turn(.human, "Help me."), Turn(.assistant, "")])
        // A tag inside a line is text, not a turn; text before the first tag is a human turn.
        XCTAssertEqual(DialogueFormat.turns("Context first.\n\nHuman: I said Assistant: no\n\nAssistant:"),
                       [Turn(.human, "Context first."), Turn(.human, "I said Assistant: no"), Turn(.assistant, "")])
        XCTAssertEqual(DialogueFormat.turns("  How do I sleep better?  "), [Turn(.human, "How do I sleep better?")])
        XCTAssertEqual(DialogueFormat.turns("\n\nHuman: a\n\nAssistant: b"), [Turn(.human, "a"), Turn(.assistant, "b")])
    }

    func testPromptAndDialogueIds() throws {
        let f = try format()
        let t = f.tokenizer
        func ids(_ text: String) -> [Int32] { t.encode(text, addSpecialTokens: false).map(Int32.init) }
        let prompt = "Human: Hi there\n\nAssistant: Hello!\n\nHuman: Help me.\n\nAssistant:"
        let expectedPrompt = [f.human] + ids(" Hi there") + [f.assistant] + ids(" Hello!") + [f.end]
            + [f.human] + ids(" Help me.") + [f.assistant]
        XCTAssertEqual(f.encodePrompt(prompt), expectedPrompt)
        // A prompt without the open assistant turn, or a bare question, gets one.
        XCTAssertEqual(f.encodePrompt("Human: Hi there"), [f.human] + ids(" Hi there") + [f.assistant])
        XCTAssertEqual(f.encodePrompt("Hi there"), [f.human] + ids(" Hi there") + [f.assistant])

        let (dialogue, supervised) = f.encodeDialogue(prompt: prompt, reply: " Sure, what with?\n")
        XCTAssertEqual(dialogue, expectedPrompt + ids(" Sure, what with?") + [f.end])
        XCTAssertEqual(f.encodeReply(" Sure, what with?\n") + [f.end], Array(dialogue.suffix(from: expectedPrompt.count)))
        // Trained on: the earlier assistant turn's text and end, the reply's text and end; nothing else.
        let trained = zip(dialogue, supervised).filter(\.1).map(\.0)
        XCTAssertEqual(trained, ids(" Hello!") + [f.end] + ids(" Sure, what with?") + [f.end])
        XCTAssertEqual(f.decodeReply(ids(" Sure, what with?") + [f.end] + ids(" ignored")), "Sure, what with?")
    }

    /// The committed vocabulary encodes as Hugging Face `tokenizers` does and decodes every reply
    /// of the corpus back to itself.
    func testVocabularyAgainstTheReference() throws {
        let f = try format()
        let rows = try String(contentsOf: TestSupport.lengthprefDirectory.appendingPathComponent("dev.jsonl"), encoding: .utf8)
            .split(separator: "\n").prefix(60)
        var replies: [String] = []
        for row in rows {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(row.utf8)) as? [String: Any])
            replies += [try XCTUnwrap(object["chosen"] as? String), try XCTUnwrap(object["rejected"] as? String)]
        }
        let texts = replies.map { " " + $0.trimmingCharacters(in: .whitespacesAndNewlines) } + [" <|end|> inside", " emoji 🙂 and ü"]
        let script = """
        import json, sys
        from tokenizers import Tokenizer
        tokenizer = Tokenizer.from_file(sys.argv[1])
        print(json.dumps([tokenizer.encode(t, add_special_tokens=False).ids for t in json.load(sys.stdin)]))
        """
        let folder = try TestSupport.temporaryDirectory("dialogue-format")
        defer { try? FileManager.default.removeItem(at: folder) }
        let scriptURL = folder.appendingPathComponent("encode.py")
        try script.write(to: scriptURL, atomically: true, encoding: .utf8)
        let output = try TestSupport.runPython(scriptURL, [TinyPolicies.tokenizer.path], input: try JSONSerialization.data(withJSONObject: texts))
        let reference = try XCTUnwrap(JSONSerialization.jsonObject(with: output) as? [[Int]])
        XCTAssertEqual(f.tokenizer.encodeBatch(texts, addSpecialTokens: false), reference)
        for reply in replies { XCTAssertEqual(f.decodeReply(f.encodeReply(reply)), reply.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }
}
