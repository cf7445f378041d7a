import Foundation
import XCTest
import PRMCLI

/// `--help` (and `prm help CMD`) for every registered subcommand: exit 0, the help on stdout,
/// every option listed.
final class SubcommandHelpTests: XCTestCase {
    /// The options each command must offer, written out so that dropping one fails here.
    static let expectedOptions: [String: [String]] = [
        "train": ["--data", "--dev", "--val-fraction", "--out", "--backbone", "--user-model", "--aggregator", "--user-tokens", "--clusters",
                  "--no-shared-generic", "--alpha", "--vanilla", "--epochs", "--lr", "--user-lr", "--mixture-lr-scale", "--weight-decay", "--warmup",
                  "--batch-size", "--micro-batch", "--max-length", "--grad-clip", "--freeze-backbone", "--dropout", "--seed", "--log-every",
                  "--threads", "--limit", "--resume", "--skip-invalid"],
        "eval": ["--model", "--data", "--json", "--groups", "--batch-size", "--few-shot", "--adapt-steps", "--adapt-lr", "--skip-invalid"],
        "adapt": ["--model", "--data", "--out", "--adapt-steps", "--adapt-lr", "--skip-invalid"],
        "score": ["--model", "--server", "--timeout", "--retries", "--connect-timeout", "--curve-secret-key", "--curve-server-key", "--user", "--user-info", "--prompt", "--input"],
        "proxy": ["--front", "--back", "--heartbeat-ms", "--liveness", "--resends", "--drain-timeout", "--max-candidates", "--max-message-bytes", "--max-queued",
                  "--curve-secret-key", "--allow-keys", "--metrics-http", "--http", "--http-token-file", "--tls-cert", "--tls-key", "--http-timeout", "--http-max-connections"],
        "keygen": ["--force"],
        "serve": ["--model", "--bind", "--threads", "--connect", "--slots", "--heartbeat-ms", "--liveness", "--batch-tokens", "--max-wait-ms", "--cache-entries", "--cache-memory", "--max-candidates",
                  "--max-message-bytes", "--max-request-tokens", "--max-queued", "--drain-timeout", "--stall-ms", "--curve-secret-key", "--allow-keys", "--curve-server-key", "--metrics-http", "--http", "--http-token-file", "--tls-cert", "--tls-key", "--http-timeout", "--http-max-connections"],
        "embed": ["--model", "--input", "--field", "--max-tokens", "--batch-tokens"],
        "probe": ["--model", "--data", "--max-replies", "--seed", "--json", "--batch-tokens", "--threads", "--skip-invalid"],
        "sft": ["--data", "--dev", "--tokenizer", "--out", "--layers", "--heads", "--embedding", "--positions", "--user-tokens", "--epochs", "--lr",
                "--weight-decay", "--warmup", "--batch-size", "--grad-clip", "--dropout", "--seed", "--log-every", "--threads", "--limit", "--resume"],
        "generate": ["--policy", "--prompt", "--input", "--user", "--samples", "--temperature", "--top-k", "--top-p", "--max-new-tokens", "--batch", "--seed"],
        "ppo": ["--policy", "--reference", "--reward-model", "--reward-server", "--timeout", "--retries", "--connect-timeout", "--data", "--groups", "--out",
                "--iterations", "--rollouts", "--minibatch", "--ppo-epochs", "--lr", "--user-lr", "--kl-coef", "--target-kl", "--kl-horizon",
                "--clip-range", "--value-clip-range", "--vf-coef", "--gamma", "--lambda", "--no-whiten", "--max-new-tokens", "--grad-clip",
                "--seed", "--checkpoint-every"],
        "bench": ["--model", "--repeats", "--data", "--steps", "--policy", "--json", "--endpoint", "--requests", "--clients", "--candidates", "--users", "--quick", "--prm-binary", "--no-deployments", "--all-backends", "--dump-inputs"],
    ]

    func testEveryCommandHasHelpListingItsOptions() {
        XCTAssertEqual(Set(PRM.commands.map { $0.spec.name }), Set(Self.expectedOptions.keys))
        for command in PRM.commands {
            let spec = command.spec
            let options = Self.expectedOptions[spec.name] ?? []
            for arguments in [[spec.name, "--help"], [spec.name, "-h"], ["help", spec.name]] {
                let result = PRM.run(arguments)
                assertSucceeded(result)
                XCTAssertTrue(result.stdout.hasPrefix("usage: prm \(spec.name)"), "\(result)")
                XCTAssertTrue(result.stdout.contains(spec.abstract), "\(result)")
                for option in options + spec.options.map({ "--\($0.name)" }) + ["--help"] {
                    XCTAssertTrue(result.stdout.contains(option), "'prm \(arguments.joined(separator: " "))' does not list \(option)")
                }
            }
        }
    }

    /// Help wins over everything else on the line, even arguments that would fail.
    func testHelpWinsOverBadArguments() {
        let result = PRM.run("train", "--alpha", "2", "--user-model", "foo", "--help")
        assertSucceeded(result)
        XCTAssertTrue(result.stdout.hasPrefix("usage: prm train [options]"), "\(result)")
    }
}
