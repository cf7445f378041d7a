import Foundation
import XCTest
import PRMTestSupport

/// `--int8-products` on the real binary: a mixed int8 plan embeds; a misspelt product, the option
/// without `--precision int8`, and a plan that needs bf16 on a CPU capped below AVX512_BF16 are
/// each refused with an error naming the problem.
final class Int8ProductsOptionTests: XCTestCase {
    func testMixedPlanRunsAndBadPlansAreRefused() throws {
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let prm = testBinary.deletingLastPathComponent().appendingPathComponent("prm").path
        let model = try TestSupport.miniLMDirectory().path
        let embed = [prm, "embed", "--model", model]
        let out = try TestSupport.run(embed + ["--precision", "int8", "--int8-products", "qkv,ffn-up", "a text"])
        XCTAssertTrue(String(decoding: out, as: UTF8.self).contains("\"embedding\""))
        let refusals: [([String], [String: String], String)] = [
            (["--precision", "int8", "--int8-products", "qkv,ffn-middle"], [:], "got 'ffn-middle'"),
            (["--precision", "bf16", "--int8-products", "qkv"], [:], "applies to --precision int8 only"),
            (["--precision", "int8", "--int8-products", "qkv"], ["ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"], "bf16 needs AVX512_BF16"),
        ]
        for (options, environment, fragment) in refusals {
            XCTAssertThrowsError(try TestSupport.run(embed + options + ["a text"], environment: environment)) { error in
                XCTAssertTrue("\(error)".contains(fragment), "missing '\(fragment)' in: \(error)")
            }
        }
    }
}
