import Foundation
import XCTest
import PRMTestSupport

/// `--precision` on a CPU that lacks the instruction set: the `prm` binary run as a child process
/// with oneDNN's ISA capped by ONEDNN_MAX_CPU_ISA (read once per process, so it needs a fresh one)
/// refuses with an error naming what is missing and what it would use, and exits 1.
final class PrecisionRefusalTests: XCTestCase {
    func testLowPrecisionIsRefusedWhenTheCPULacksIt() throws {
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let prm = testBinary.deletingLastPathComponent().appendingPathComponent("prm")
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: prm.path), "no prm binary at \(prm.path): build it first")
        let model = try TestSupport.miniLMDirectory().path
        let cases = [("int8", "AVX2", ["int8 needs AVX-512 VNNI", "cpu_isa_avx2", "use --precision fp32"]),
                     ("bf16", "AVX512_CORE_VNNI", ["bf16 needs AVX512_BF16", "cpu_isa_avx512_core_vnni", "use --precision int8"])]
        for (precision, isa, fragments) in cases {
            XCTAssertThrowsError(try TestSupport.run([prm.path, "embed", "--model", model, "--precision", precision, "a text"],
                                                     environment: ["ONEDNN_MAX_CPU_ISA": isa])) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains("exited 1"), message)
                for fragment in fragments { XCTAssertTrue(message.contains(fragment), "missing '\(fragment)' in: \(message)") }
            }
            // Uncapped, the same command runs.
            let out = try TestSupport.run([prm.path, "embed", "--model", model, "--precision", precision, "a text"])
            XCTAssertTrue(String(decoding: out, as: UTF8.self).contains("\"embedding\""))
        }
    }

    /// The Llama decoder (a GGUF chat model under `prm generate`) is refused the same way.
    func testDecoderPrecisionIsRefusedWhenTheCPULacksIt() throws {
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let prm = testBinary.deletingLastPathComponent().appendingPathComponent("prm")
        let command = [prm.path, "generate", "--policy", try TestSupport.smolLM2File().path, "--prompt", "Hi", "-n", "1",
                       "--max-new-tokens", "2", "--temperature", "0", "--precision", "int8"]
        XCTAssertThrowsError(try TestSupport.run(command, environment: ["ONEDNN_MAX_CPU_ISA": "AVX2"])) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("exited 1"), message)
            XCTAssertTrue(message.contains("int8 needs AVX-512 VNNI"), message)
        }
        let out = try TestSupport.run(command)
        XCTAssertTrue(String(decoding: out, as: UTF8.self).contains("\"candidates\""))
    }
}
