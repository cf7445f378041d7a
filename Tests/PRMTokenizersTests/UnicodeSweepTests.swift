import Foundation
import PRMTestSupport
import XCTest
@testable import PRMTokenizers

/// Every Unicode code point through the normalizer and the two pre-tokenizers, against the
/// reference's stages on the same text. This is what keeps UnicodeTables.swift honest: Swift's
/// own Unicode data is newer than the reference's and would disagree on thousands of them.
final class UnicodeSweepTests: XCTestCase {
    /// All scalars in chunks; each chunk's text puts `format(scalar)` side by side.
    private func sweepTexts(chunk: Int = 8192, _ format: (Unicode.Scalar) -> String) -> [String] {
        var texts: [String] = []
        var current = ""
        var inChunk = 0
        for code in UInt32(0)...0x10FFFF {
            guard let scalar = Unicode.Scalar(code) else { continue }
            current += format(scalar)
            inChunk += 1
            if inChunk == chunk {
                texts.append(current)
                current = ""
                inChunk = 0
            }
        }
        if !current.isEmpty { texts.append(current) }
        return texts
    }

    private func scalars(_ text: String) -> [UInt32] { text.unicodeScalars.map(\.value) }

    /// The first differing scalar, for a readable failure.
    private func firstDifference(_ swift: String, _ reference: String) -> String {
        let left = scalars(swift), right = scalars(reference)
        let index = firstMismatch(left, right)
        func around(_ values: [UInt32]) -> String {
            values[max(0, index - 4)..<min(values.count, index + 4)].map { String(format: "U+%04X", $0) }.joined(separator: " ")
        }
        return "at scalar \(index): swift [\(around(left))] reference [\(around(right))]"
    }

    func testBertNormalizerOnEveryCodePoint() throws {
        let url = try Reference.miniLMTokenizer
        // "x" between code points keeps NFD's reordering within one code point's marks.
        let texts = sweepTexts { "x" + String($0) }
        let reference = try Reference.normalize(tokenizer: url, texts: texts)
        let normalizer = BertNormalizer(cleanText: true, handleChineseChars: true, stripAccents: nil, lowercase: true)
        var failures = 0
        for (text, expected) in zip(texts, reference) {
            var output: [UInt32] = []
            scalars(text).withUnsafeBufferPointer { normalizer.normalize($0, into: &output) }
            let swift = PretrainedTokenizer.string(output)
            if swift != expected {
                failures += 1
                if failures <= 3 { XCTFail("BertNormalizer differs \(firstDifference(swift, expected))") }
            }
        }
        XCTAssertEqual(texts.count, reference.count)
    }

    func testBertPreTokenizerOnEveryCodePoint() throws {
        let url = try Reference.miniLMTokenizer
        let texts = sweepTexts { "a" + String($0) + "a " }
        let reference = try Reference.preTokenize(tokenizer: url, texts: texts)
        try comparePieces(BertPreTokenizer(), texts, reference, label: "BertPreTokenizer")
    }

    func testByteLevelPreTokenizerOnEveryCodePoint() throws {
        let url = try Reference.trainedBPE()
        // Each code point after a letter, a digit and a symbol: it joins exactly the one of its
        // class (letter, number, other) and none if it is whitespace. Lengths only, to keep the
        // reference's answer small.
        let texts = sweepTexts(chunk: 4096) { "a" + String($0) + "1" + String($0) + "!" + String($0) }
        let answer = try Reference.call(["tokenizer": url.path, "pre_tokenize": texts, "lengths_only": true])
        guard let reference = answer["pre_tokenized_lengths"] as? [[Int]] else {
            throw TestSupport.Failure("reference answer lacks 'pre_tokenized_lengths'")
        }
        XCTAssertEqual(texts.count, reference.count)
        let preTokenizer = ByteLevelPreTokenizer(addPrefixSpace: false, useRegex: true)
        var failures = 0
        for (text, expected) in zip(texts, reference) {
            var pieces = Pieces()
            let scalars = scalars(text)
            scalars.withUnsafeBufferPointer { preTokenizer.preTokenize($0, into: &pieces) }
            let lengths = pieces.ranges.map(\.count)
            if lengths != expected {
                failures += 1
                if failures <= 3 {
                    // Locate the code point: lengths are in UTF-8 bytes of the text.
                    let index = firstMismatch(lengths, expected)
                    let byteOffset = lengths.prefix(index).reduce(0, +)
                    var bytes = 0, scalarIndex = 0
                    while scalarIndex < scalars.count && bytes < byteOffset {
                        bytes += String(Unicode.Scalar(scalars[scalarIndex]).map { String($0) } ?? "").utf8.count
                        scalarIndex += 1
                    }
                    let near = scalars[max(0, scalarIndex - 3)..<min(scalars.count, scalarIndex + 3)]
                        .map { String(format: "U+%04X", $0) }.joined(separator: " ")
                    XCTFail("ByteLevel split differs at piece \(index) near [\(near)]: swift \(Array(lengths[index...].prefix(5))) reference \(Array(expected[index...].prefix(5)))")
                }
            }
        }
    }

    private func comparePieces(_ preTokenizer: any PreTokenizer, _ texts: [String], _ reference: [[String]],
                               label: String) throws {
        XCTAssertEqual(texts.count, reference.count)
        var failures = 0
        for (text, expected) in zip(texts, reference) {
            var pieces = Pieces()
            scalars(text).withUnsafeBufferPointer { preTokenizer.preTokenize($0, into: &pieces) }
            let swift = pieces.ranges.map { PretrainedTokenizer.string(Array(pieces.scalars[$0])) }
            if swift != expected {
                failures += 1
                if failures <= 3 {
                    let index = firstMismatch(swift, expected)
                    let show = { (pieces: [String]) in pieces[max(0, index - 2)..<min(pieces.count, index + 3)].map(\.debugDescription) }
                    XCTFail("\(label) differs at piece \(index): swift \(show(swift)) reference \(show(expected))")
                }
            }
        }
    }

    func testTableParsesCompletely() {
        let runs = UnicodeClasses.parseRuns(UnicodeClasses.runs)
        let lines = UnicodeClasses.runs.split(separator: "\n").count
        XCTAssertEqual(runs.count, lines, "every generated line parses")
        XCTAssertTrue(zip(runs, runs.dropFirst()).allSatisfy { $0.1 < $1.0 }, "runs are sorted and disjoint")
    }
}
