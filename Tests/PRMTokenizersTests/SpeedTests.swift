import Foundation
import PRMTestSupport
import XCTest
@testable import PRMTokenizers

/// Encoding speed on the whole corpus (about 4,800 texts). The bounds are loose enough for a
/// shared machine; the report quotes the measured times. Run in release with
/// `swift test -c release -Xswiftc -enable-testing --filter SpeedTests`.
final class SpeedTests: XCTestCase {
    #if DEBUG
    private let bound = 30.0
    #else
    private let bound = 1.0
    #endif

    private func measureEncoding(_ tokenizer: any Tokenizer, _ texts: [String], label: String) -> Double {
        _ = tokenizer.encode(texts[0], addSpecialTokens: true)
        var best = Double.infinity
        for _ in 0..<3 {
            let start = Date()
            let ids = tokenizer.encodeBatch(texts, addSpecialTokens: true)
            best = min(best, Date().timeIntervalSince(start))
            XCTAssertEqual(ids.count, texts.count)
        }
        var serial = Double.infinity
        for _ in 0..<2 {
            let start = Date()
            for text in texts { _ = tokenizer.encode(text, addSpecialTokens: true) }
            serial = min(serial, Date().timeIntervalSince(start))
        }
        let characters = texts.reduce(0) { $0 + $1.unicodeScalars.count }
        print(String(format: "%@: %d texts, %d scalars: encodeBatch %.3f s, one by one %.3f s", label, texts.count,
                     characters, best, serial))
        return best
    }

    func testWordPieceCorpusEncodingSpeed() throws {
        let tokenizer = try TokenizerLoader.load(contentsOf: try Reference.miniLMTokenizer)
        let seconds = measureEncoding(tokenizer, try Reference.corpus(), label: "WordPiece")
        XCTAssertLessThan(seconds, bound)
    }

    func testByteLevelBPECorpusEncodingSpeed() throws {
        let tokenizer = try TokenizerLoader.load(contentsOf: try Reference.trainedBPE())
        let seconds = measureEncoding(tokenizer, try Reference.corpus(), label: "Byte-level BPE")
        XCTAssertLessThan(seconds, bound)
    }

    func testLoadingSpeed() throws {
        let url = try Reference.miniLMTokenizer
        let start = Date()
        _ = try TokenizerLoader.load(contentsOf: url)
        let seconds = Date().timeIntervalSince(start)
        print(String(format: "MiniLM tokenizer.json loads in %.3f s", seconds))
        XCTAssertLessThan(seconds, bound * 2)
    }
}
