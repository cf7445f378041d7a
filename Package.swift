// swift-tools-version:6.0
import PackageDescription

/// Release builds compile each module as a whole (WMO) and keep bounds checks off the hot loops
/// by using unsafe buffers there explicitly; debug builds stay as SwiftPM makes them.
/// They target the CPU they are built on (`-target-cpu native`, like `-march=native`): without it
/// LLVM may only use SSE2, so the element-wise kernels' 16-lane SIMD code ran four lanes at a time
/// on machines with AVX-512. prm is built where it runs (scripts/setup.sh, CI); a binary copied to
/// an older CPU can stop with an illegal instruction.
let optimised: [SwiftSetting] = [
    .unsafeFlags(["-wmo", "-target-cpu", "native"], .when(configuration: .release)),
]

let package = Package(
    name: "prm",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "prm", targets: ["prm"]),
    ],
    targets: [
        // System libraries: Debian's OpenBLAS (pthread build), oneDNN (OpenMP build; Debian ships no
        // .pc file for it), libzmq and libmicrohttpd.
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "pkg-config"])]
        ),
        .systemLibrary(
            name: "CDNNL",
            providers: [.apt(["libdnnl-dev"])]
        ),
        .systemLibrary(
            name: "CZeroMQ",
            // No pkgConfig: Debian's libzmq.pc adds -isystem flags SwiftPM refuses; the header is
            // in /usr/include and the module map links libzmq.
            providers: [.apt(["libzmq3-dev", "pkg-config"])]
        ),
        // Not a library: inline helpers for CPU instructions Swift cannot name (software prefetch).
        .systemLibrary(name: "CIntrinsics"),
        .systemLibrary(
            name: "CMicroHTTPD",
            // The HTTP front door (`--http`) and `--metrics-http`; Debian builds it with GnuTLS.
            providers: [.apt(["libmicrohttpd-dev"])]
        ),

        // Tensors, kernels with explicit backward passes, safetensors, optimizer, logging.
        .target(name: "PRMCore", dependencies: ["CBLAS", "CDNNL", "CIntrinsics"], swiftSettings: optimised),
        // tokenizer.json: BERT WordPiece and byte-level BPE.
        .target(name: "PRMTokenizers", dependencies: ["PRMCore"], swiftSettings: optimised),
        // Backbones from Hugging Face folders, user models, aggregators, reward model, checkpoints.
        .target(name: "PRMModel", dependencies: ["PRMCore", "PRMTokenizers"], swiftSettings: optimised),
        // The one scoring path: tokenization, user resolution, windows, batching, the h cache.
        .target(name: "PRMScoring", dependencies: ["PRMCore", "PRMTokenizers", "PRMModel"], swiftSettings: optimised),
        // The scoring service: protocol v1 over ZeroMQ and HTTP, server, batching, Swift client.
        .target(name: "PRMServing", dependencies: ["PRMCore", "PRMModel", "PRMScoring", "CZeroMQ", "CMicroHTTPD"], swiftSettings: optimised),
        // Data sets, trainer, evaluation.
        .target(name: "PRMTraining", dependencies: ["PRMCore", "PRMModel", "PRMScoring"], swiftSettings: optimised),
        // The optional RL loop: a user-conditioned GPT-2 policy, SFT, sampling with the KV cache, PPO
        // against any RewardSource: the scoring path in process here, a scoring service (the v1
        // score op) supplied by the CLI, so the policy library does not link libzmq.
        .target(name: "PRMPolicy", dependencies: ["PRMCore", "PRMTokenizers", "PRMModel", "PRMScoring"], swiftSettings: optimised),
        // Argument parsing and the product's subcommands; `prm`'s main.swift stays thin.
        .target(name: "PRMCLI", dependencies: ["PRMCore", "PRMModel", "PRMScoring", "PRMServing", "PRMTraining", "PRMPolicy"], swiftSettings: optimised),
        // `prm bench`: the benchmark suites, on PRMCLI's command-line plumbing and the libraries they
        // measure; a target of their own so the CLI holds the product's commands only.
        .target(name: "PRMBench", dependencies: ["PRMCore", "PRMModel", "PRMScoring", "PRMServing", "PRMTraining", "PRMPolicy", "PRMCLI"], swiftSettings: optimised),
        .executableTarget(name: "prm", dependencies: ["PRMCLI", "PRMBench"], swiftSettings: optimised),

        // Shared by the test targets: locating the repository, the pretrained model, Python references,
        // running a check on every sgemm backend.
        .target(name: "PRMTestSupport", dependencies: ["PRMCore"], path: "Tests/PRMTestSupport"),
        // A tiny reward-model scorer for the service's tests and its clients' (one fixture, not a copy per target).
        .target(name: "PRMScoringTestSupport", dependencies: ["PRMCore", "PRMModel", "PRMScoring", "PRMTestSupport"], path: "Tests/PRMScoringTestSupport"),
        .testTarget(name: "PRMCoreTests", dependencies: ["PRMCore", "PRMTestSupport"]),
        .testTarget(name: "PRMTokenizersTests", dependencies: ["PRMCore", "PRMTokenizers", "PRMTestSupport"]),
        .testTarget(name: "PRMModelTests", dependencies: ["PRMCore", "PRMTokenizers", "PRMModel", "PRMTestSupport"]),
        .testTarget(name: "PRMScoringTests", dependencies: ["PRMCore", "PRMModel", "PRMScoring", "PRMTestSupport", "PRMScoringTestSupport"]),
        .testTarget(name: "PRMServingTests", dependencies: ["CZeroMQ", "PRMCore", "PRMModel", "PRMScoring", "PRMServing", "PRMTestSupport", "PRMScoringTestSupport"]),
        .testTarget(name: "PRMTrainingTests", dependencies: ["PRMCore", "PRMModel", "PRMScoring", "PRMTraining", "PRMTestSupport"]),
        .testTarget(name: "PRMPolicyTests", dependencies: ["PRMCore", "PRMTokenizers", "PRMModel", "PRMScoring", "PRMPolicy", "PRMTestSupport"]),
        // Drives `prm` in process with every command the executable registers, bench included.
        .testTarget(name: "PRMCLITests", dependencies: ["PRMCore", "PRMModel", "PRMScoring", "PRMServing", "PRMTraining", "PRMPolicy", "PRMCLI", "PRMBench", "PRMTestSupport", "PRMScoringTestSupport"]),
    ]
)
