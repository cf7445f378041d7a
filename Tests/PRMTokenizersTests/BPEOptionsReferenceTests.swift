import Foundation
import PRMTestSupport
import XCTest
@testable import PRMTokenizers

/// The BPE model's less common options (unk token with and without fusing, continuation prefix,
/// end-of-word suffix, byte fallback, ignore_merges) on a small hand-written vocabulary, against
/// the reference loading the same file.
final class BPEOptionsReferenceTests: XCTestCase {
    private let texts = ["abc ab a", "xyz axxb b", "cab ccc bca", "x", "ab!c", "aaa bbb", "é ab", ""]

    private func model(_ options: [String: Any]) -> [String: Any] {
        var vocab: [String: Int] = [:]
        for token in ["<unk>", "a", "b", "c", "##a", "##b", "##c", "a</w>", "b</w>", "c</w>", "##a</w>", "##b</w>",
                      "##c</w>", "ab", "ab</w>", "abc</w>", "##bc</w>", "<0x78>", "<0x79>", "<0xC3>", "<0xA9>", "##x"] {
            vocab[token] = vocab.count
        }
        var model: [String: Any] = [
            "type": "BPE", "dropout": NSNull(), "unk_token": "<unk>", "continuing_subword_prefix": "##",
            "end_of_word_suffix": "</w>", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": [["a", "##b"], ["a", "##b</w>"], ["##b", "##c</w>"], ["ab", "##c</w>"]],
        ]
        for (key, value) in options { model[key] = value }
        return model
    }

    private func compare(_ options: [String: Any], label: String) throws {
        let folder = try TestSupport.temporaryDirectory("prm-bpe-options")
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("tokenizer.json")
        let json: [String: Any] = [
            "version": "1.0", "added_tokens": [], "normalizer": NSNull(),
            "pre_tokenizer": ["type": "BertPreTokenizer"], "post_processor": NSNull(), "decoder": NSNull(),
            "model": model(options),
        ]
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        let tokenizer = try TokenizerLoader.load(contentsOf: url)
        let reference = try Reference.encode(tokenizer: url, texts: texts, addSpecialTokens: false)
        assertSameIDs(texts.map { tokenizer.encode($0, addSpecialTokens: false) }, reference.ids, texts: texts, label: label)
        assertSameStrings(reference.ids.map { tokenizer.decode($0, skipSpecialTokens: false) }, reference.decoded,
                          inputs: texts, label: "\(label) decode")
    }

    func testUnknownCharacters() throws {
        try compare([:], label: "unk")
        try compare(["fuse_unk": true], label: "fused unk")
    }

    func testByteFallback() throws {
        try compare(["byte_fallback": true], label: "byte fallback")
        try compare(["byte_fallback": true, "fuse_unk": true], label: "byte fallback, fused unk")
    }

    func testNoUnknownTokenDropsCharacters() throws {
        try compare(["unk_token": NSNull()], label: "no unk")
    }

    func testIgnoreMerges() throws {
        try compare(["ignore_merges": true, "end_of_word_suffix": NSNull()], label: "ignore merges")
    }

    func testPlainModelWithoutAffixes() throws {
        try compare(["continuing_subword_prefix": NSNull(), "end_of_word_suffix": NSNull(),
                     "merges": [["a", "b"], ["ab", "c</w>"]]], label: "plain")
    }
}
