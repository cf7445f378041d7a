import Foundation
import PRMCore
import PRMModel

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
