import Foundation
import PRMCore
import PRMModel
import PRMTraining

/// `prm eval`: per-user pairwise accuracy, personalized and generic, seen and unseen users.
enum EvalCommand: Subcommand {
    static let spec = CommandSpec(
        name: "eval",
        abstract: "Evaluate a reward model per user: seen/unseen users, personalized and generic.",
        discussion: """
        Accuracy is the share of comparisons whose chosen reply scores above the rejected one. \
        'personal' uses the user's own embedding (unseen users get the generic user 0 with their \
        explicit text); 'generic' scores everyone as user 0.

        --groups FILE.json maps user ids to labels (e.g. majority/minority) and adds per-label and \
        seen/unseen × label rows.

        Example:
          prm eval --model runs/prm --data data/lengthpref/dev.jsonl --json runs/prm/dev-eval.json
        """,
        options: [
            .value("model", placeholder: "DIR", help: "Reward-model checkpoint (from prm train)."),
            .value("data", placeholder: "FILE", help: "Comparisons to evaluate (JSONL)."),
            .value("json", placeholder: "FILE", help: "Write the report as JSON."),
            .value("groups", placeholder: "FILE", help: "JSON object: user id -> group label."),
            .value("batch-size", placeholder: "N", help: "Comparisons per forward pass.", default: "16"),
            .flag("skip-invalid", help: "Skip invalid data rows instead of stopping."),
        ])

    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output out: inout Out) throws -> Int32 {
        let batchSize = try arguments.int("batch-size", default: 16)
        guard batchSize >= 1 else { throw arguments.usageError("--batch-size must be at least 1, got \(batchSize)") }
        let (model, users, _) = try Checkpoint.load(URL(fileURLWithPath: try arguments.require("model")))
        let path = try arguments.require("data")
        let data = try PreferenceDataset.load(URL(fileURLWithPath: path), skipInvalid: arguments.flag("skip-invalid"))
        if data.skipped > 0 { Log.warning("\(path): skipped \(data.skipped) invalid rows") }
        let groups = try arguments.string("groups").map(loadGroups) ?? [:]
        let encoded = model.encode(data.comparisons, users: users)
        let progress = ProgressBar(total: encoded.count, label: "eval", unit: "pair")
        let report = Evaluator(model: model, users: users, batchSize: batchSize)
            .evaluate(encoded, groups: groups, progress: progress)
        progress.finish()
        if let json = arguments.string("json") { try AtomicFile.writeJSON(report, to: URL(fileURLWithPath: json)) }
        out.write(report.table() + "\n")
        return 0
    }

    static func loadGroups(_ path: String) throws -> [String: String] {
        let data = try InputFiles.read(path)
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CLIError("\(path): expected a JSON object mapping user ids to labels")
        }
        var groups: [String: String] = [:]
        for (user, label) in object {
            guard let label = label as? String else { throw CLIError("\(path): label of user '\(user)' is not a string") }
            groups[user] = label
        }
        return groups
    }
}

/// `prm score`: rank candidate replies for one user in-process (no server).
enum ScoreCommand: Subcommand {
    static let spec = CommandSpec(
        name: "score",
        abstract: "Score and rank candidate replies for a user with a trained reward model.",
        discussion: """
        Either give one prompt and its candidates on the command line, or --input a JSONL file whose \
        lines are {"user_id", "prompt", "candidates": [...]} (optional "user_info"). Output is one \
        JSON object per request: {"user_id", "known_user", "ranking": [{"index", "score", "text"}]} \
        best first. Unknown users are scored as the generic user 0.

        Example:
          prm score --model runs/prm --user worker-3 --prompt "Human: Any tips for sleeping?\\n\\nAssistant:" \\
            "Keep a regular schedule." "There are many things that can help, such as a regular schedule, a dark room and no screens."
        """,
        options: [
            .value("model", placeholder: "DIR", help: "Reward-model checkpoint."),
            .value("user", placeholder: "ID", help: "User id (unknown ids get the generic user).", default: ""),
            .value("user-info", placeholder: "TEXT", help: "Explicit user text."),
            .value("prompt", placeholder: "TEXT", help: "The prompt the candidates answer."),
            .value("input", placeholder: "FILE", help: "JSONL requests ('-' for stdin)."),
        ],
        positionals: [.variadic("candidate", help: "Candidate replies.")])

    struct Request {
        var user: String
        var userInfo: String?
        var prompt: String
        var candidates: [String]
    }

    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output out: inout Out) throws -> Int32 {
        let (model, users, _) = try Checkpoint.load(URL(fileURLWithPath: try arguments.require("model")))
        let requests = try readRequests(arguments)
        for request in requests {
            let user = users.index(of: request.user)
            let explicit = request.userInfo.map(model.tokenize) ?? []
            let prompt = model.tokenize(request.prompt)
            let scores = model.forward(request.candidates.map {
                RewardInput(user: user, explicit: explicit, prompt: prompt, reply: model.tokenize($0))
            })
            let ranking = scores.indices.sorted { scores[$0] > scores[$1] }.map {
                ["index": $0, "score": Double(scores[$0]), "text": request.candidates[$0]] as [String: Any]
            }
            let object: [String: Any] = ["user_id": request.user, "known_user": user != 0, "ranking": ranking]
            let line = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            out.write(String(decoding: line, as: UTF8.self) + "\n")
        }
        return 0
    }

    static func readRequests(_ arguments: ParsedArguments) throws -> [Request] {
        let candidates = arguments.positionalList("candidate")
        if let input = arguments.string("input") {
            guard candidates.isEmpty, !arguments.isSet("prompt") else {
                throw arguments.usageError("give either --input or --prompt with candidates, not both")
            }
            return try JSONLines.objects(try InputFiles.read(input), name: input).map { line, value in
                guard let object = value as? [String: Any] else { throw CLIError("\(input):\(line): expected a JSON object") }
                guard let user = object["user_id"] as? String else { throw CLIError("\(input):\(line): field 'user_id' missing or not a string") }
                guard let prompt = object["prompt"] as? String else { throw CLIError("\(input):\(line): field 'prompt' missing or not a string") }
                guard let list = object["candidates"] as? [String], !list.isEmpty else {
                    throw CLIError("\(input):\(line): field 'candidates' must be a non-empty list of strings")
                }
                if let info = object["user_info"], !(info is String) && !(info is NSNull) {
                    throw CLIError("\(input):\(line): field 'user_info' must be a string")
                }
                return Request(user: user, userInfo: object["user_info"] as? String, prompt: prompt, candidates: list)
            }
        }
        guard let prompt = arguments.string("prompt") else { throw arguments.usageError("missing --prompt (or --input)") }
        guard !candidates.isEmpty else { throw arguments.usageError("give at least one candidate reply") }
        return [Request(user: arguments.string("user", default: ""), userInfo: arguments.string("user-info"), prompt: prompt, candidates: candidates)]
    }
}
