import Foundation
import PRMCore
import PRMModel
import PRMPolicy

/// `prm generate`: sample candidate replies from a policy, as JSONL that `prm score` ranks.
enum GenerateCommand: Subcommand {
    static let defaults = SamplingSettings()

    static let spec = CommandSpec(
        name: "generate",
        abstract: "Sample candidate replies from a policy (prm sft / prm ppo, or a GGUF chat model) for prompts and users.",
        discussion: """
        Prompts come from --prompt (repeatable) or --input, a JSONL file whose lines are \
        {"prompt", "user_id"} (optional; "user_info" is passed through). Prompts use the data's form \
        ("Human: ...\\n\\nAssistant:"; a bare question is one human turn). Each prompt is computed once \
        and its N replies continue from its KV cache; all replies of a batch of prompts decode together. \
        Unknown or missing users get the generic user 0.

        Output is one JSON object per prompt, {"user_id", "prompt", "candidates": [...]}, the input of \
        `prm score --input -`, so a best-of-N pipeline is
          prm generate --policy runs/ppo --input prompts.jsonl -n 8 | prm score --model runs/prm --input -

        Each reply draws from its own random stream (--seed, the prompt's position, the sample's), so \
        the output does not depend on --batch.

        --policy may also be a pretrained chat model in llama.cpp's GGUF format (llama architecture, \
        e.g. models/SmolLM2-135M-Instruct.Q4_1.gguf, which scripts/setup.sh installs): each prompt is \
        one user message, written with the file's own chat template (its default system message \
        included), and replies end at the end-of-turn token. Users do not change what it writes; \
        user_id is passed through for prm score. Prompts run one after another (--batch does not apply).
        """,
        options: [
            .value("policy", placeholder: "PATH", help: "Policy checkpoint folder (prm sft / prm ppo) or a GGUF chat model file."),
            .repeated("prompt", placeholder: "TEXT", help: "A prompt (repeatable)."),
            .value("input", placeholder: "FILE", help: "JSONL prompts ('-' for stdin)."),
            .value("user", placeholder: "ID", help: "User id for --prompt (unknown ids get the generic user)."),
            .value("samples", short: "n", placeholder: "N", help: "Replies per prompt.", default: "4"),
            .value("temperature", placeholder: "T", help: "Softmax temperature; 0 is greedy.", default: "\(defaults.temperature)"),
            .value("top-k", placeholder: "K", help: "Sample among the K most likely tokens (0: all).", default: "\(defaults.topK)"),
            .value("top-p", placeholder: "P", help: "Sample among the most likely tokens holding mass P.", default: "\(defaults.topP)"),
            .value("max-new-tokens", placeholder: "N", help: "Longest reply in tokens (it stops earlier at the end-of-reply token).",
                   default: "\(defaults.maxNewTokens)"),
            .value("batch", placeholder: "N", help: "Prompts decoded together.", default: "32"),
            .value("seed", placeholder: "N", help: "Seed of the random streams.", default: "0"),
            PrecisionOption.spec, PrecisionOption.int8Products,
        ])

    struct Request {
        var user: String?
        var userInfo: String?
        var prompt: String
    }

    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output out: inout Out) throws -> Int32 {
        let requests = try readRequests(arguments)
        var settings = SamplingSettings()
        settings.temperature = Float(try arguments.double("temperature", default: Double(defaults.temperature)))
        settings.topK = try arguments.int("top-k", default: defaults.topK)
        settings.topP = Float(try arguments.double("top-p", default: Double(defaults.topP)))
        settings.maxNewTokens = try arguments.int("max-new-tokens", default: defaults.maxNewTokens)
        do { try settings.validate() } catch let error as PolicyError { throw arguments.usageError(error.description) }
        let samples = try arguments.int("samples", default: 4), batch = try arguments.int("batch", default: 32)
        let seed = try arguments.int("seed", default: 0)
        guard samples >= 1, batch >= 1, seed >= 0 else { throw arguments.usageError("--samples and --batch must be at least 1, --seed non-negative") }
        let policyPath = try arguments.require("policy")
        if policyPath.hasSuffix(".gguf") {
            return try runChatModel(URL(fileURLWithPath: policyPath), requests: requests, samples: samples, seed: seed, settings: settings,
                                    arguments: arguments, output: &out)
        }
        let (policy, users, _) = try PolicyCheckpoint.load(URL(fileURLWithPath: policyPath))
        try policy.backbone.useInferencePrecision(try arguments.precision())
        guard settings.maxNewTokens < policy.maxPositions - policy.userRows else {
            throw arguments.usageError("--max-new-tokens \(settings.maxNewTokens) leaves no room for a prompt in the policy's \(policy.maxPositions) positions")
        }
        let generator = Generator(policy: policy)
        for start in stride(from: 0, to: requests.count, by: batch) {
            let chunk = Array(requests[start..<min(start + batch, requests.count)])
            let replies = generator.generate(chunk.enumerated().map { k, request in
                GenerationRequest(user: request.user.map(users.index) ?? 0, prompt: policy.promptIDs(request.prompt, maxNewTokens: settings.maxNewTokens),
                                  samples: samples, seed: UInt64(seed) &+ 0x1_0000 &* UInt64(start + k))
            }, settings: settings)
            for (request, ids) in zip(chunk, replies) { out.write(line(request, candidates: ids.map(policy.format.decodeReply))) }
        }
        return 0
    }

    /// The GGUF path: every prompt is one user message in the model's chat template; its samples
    /// decode together over its cached prompt.
    static func runChatModel<Out: TextOutputStream>(_ url: URL, requests: [Request], samples: Int, seed: Int, settings: SamplingSettings,
                                                    arguments: ParsedArguments, output out: inout Out) throws -> Int32 {
        guard FileManager.default.fileExists(atPath: url.path) else { throw CLIError("\(url.path): GGUF model file not found") }
        let generator = try ChatGenerator.load(gguf: url, precision: try arguments.precision())
        let limit = generator.model.maxPositions
        for (k, request) in requests.enumerated() {
            let prompt = generator.promptIDs([ChatMessage(role: .user, content: request.prompt)])
            guard prompt.count + settings.maxNewTokens <= limit else {
                throw arguments.usageError("prompt \(k + 1) (\(prompt.count) tokens) and --max-new-tokens \(settings.maxNewTokens) exceed the model's \(limit) positions")
            }
            let replies = generator.generate(prompt: prompt, samples: samples, seed: UInt64(seed) &+ 0x1_0000 &* UInt64(k), settings: settings)
            out.write(line(request, candidates: replies.map(generator.text(ofReply:))))
        }
        return 0
    }

    static func line(_ request: Request, candidates: [String]) -> String {
        var w = JSONWriter()
        w.beginObject()
        w.key("user_id")
        if let user = request.user { w.string(user) } else { w.null() }
        if let info = request.userInfo { w.key("user_info"); w.string(info) }
        w.key("prompt"); w.string(request.prompt)
        w.key("candidates"); w.beginArray()
        for candidate in candidates { w.string(candidate) }
        w.endArray()
        w.endObject()
        return w.text + "\n"
    }

    static func readRequests(_ arguments: ParsedArguments) throws -> [Request] {
        let prompts = arguments.strings("prompt")
        if let input = arguments.string("input") {
            guard prompts.isEmpty, !arguments.isSet("user") else { throw arguments.usageError("give either --input or --prompt (with --user), not both") }
            return try JSONLines.values(try InputFiles.read(input), name: input).map { line, value in
                let place = "\(input):\(line)"
                guard let object = value.object else { throw CLIError("\(place): expected a JSON object, got \(value.kind.withArticle)") }
                func optional(_ field: String) throws -> String? {
                    switch object[field] {
                    case nil, .null?: return nil
                    case .string(let text)?: return text
                    case let other?: throw CLIError("\(place): field '\(field)' must be a string, got \(other.kind.rawValue)")
                    }
                }
                guard let prompt = try optional("prompt") else { throw CLIError("\(place): field 'prompt' missing") }
                return Request(user: try optional("user_id"), userInfo: try optional("user_info"), prompt: prompt)
            }
        }
        guard !prompts.isEmpty else { throw arguments.usageError("give --prompt TEXT or --input FILE") }
        return prompts.map { Request(user: arguments.string("user"), userInfo: nil, prompt: $0) }
    }
}
