import Foundation
import PRMCore
import PRMModel
import PRMScoring
import PRMServing

/// `prm score`: rank candidate replies for a user, in process (no server).
enum ScoreCommand: Subcommand {
    static let spec = CommandSpec(
        name: "score",
        abstract: "Score and rank candidate replies for a user with a trained reward model.",
        discussion: """
        Either give one prompt and its candidates on the command line, or --input a JSONL file whose \
        lines are {"user_id", "prompt", "candidates": [...]} (optional "user_info"); as in protocol v1, \
        "prompt" may be a list of {"role", "content"} chat messages and a candidate an assistant message, \
        written out in the checkpoint's text template (its "template": hh turns by default). Output is one \
        JSON object per request: {"known_user", "ranking": [{"index", "score", "text" (the candidate as given)}] best first, \
        "truncated": [indices cut to the model's window], "user_id"}. Unknown or missing users are \
        scored as the generic user 0. A --model checkpoint whose weights have diverged (a probe \
        reply scores NaN or infinite) is refused.

        Example ($'…' makes the shell send real newlines; in "…" a \\n stays a backslash and an n):
          prm score --model runs/prm --user worker-3 --prompt $'Human: Any tips for sleeping?\\n\\nAssistant:' \\
            "Keep a regular schedule." "There are many things that can help, such as a regular schedule, a dark room and no screens."
        """,
        options: [
            .value("model", placeholder: "DIR", help: "Reward-model checkpoint, or a …ForSequenceClassification folder as it is (in process)."),
            .value("server", placeholder: "ENDPOINT", help: "Score through a running `prm serve` instead (e.g. tcp://127.0.0.1:5555); "
                   + "a request over its max_message_bytes is refused before sending."),
        ] + ClientOptions.all(for: "server") + [
            CurveOptions.secretKey, CurveOptions.serverKey,
            .value("user", placeholder: "ID", help: "User id (unknown ids get the generic user).", default: ""),
            .value("user-info", placeholder: "TEXT", help: "Explicit user text."),
            .value("prompt", placeholder: "TEXT", help: "The prompt the candidates answer."),
            .value("input", placeholder: "FILE", help: "JSONL requests ('-' for stdin)."),
            PrecisionOption.spec, PrecisionOption.int8Products, TemplateOption.spec,
        ],
        positionals: [.variadic("candidate", help: "Candidate replies.")])

    /// One ranking request: a user, a prompt and its candidates.
    static func run<Out: TextOutputStream>(_ arguments: ParsedArguments, output out: inout Out) throws -> Int32 {
        let requests = try readRequests(arguments)
        let score = try scoringFunction(arguments)
        for (number, request) in requests.enumerated() {
            let scored = try score(request)
            // JSON has no number for NaN: a score that is not one is an error, never a null in the output.
            if let bad = scored.firstIndex(where: { !$0.score.isFinite }) {
                throw CLIError("request \(number + 1): candidate \(bad) scores \(scored[bad].score); the model cannot score it")
            }
            out.write(resultLine(request, scored: scored))
        }
        return 0
    }

    /// In process (--model) or through a server (--server): the same requests, the same output.
    static func scoringFunction(_ arguments: ParsedArguments) throws -> (RankRequest) throws -> [ScoredItem] {
        switch (arguments.string("model"), try arguments.endpoint("server")) {
        case (let model?, nil):
            let scorer = try Scorer(checkpoint: URL(fileURLWithPath: model), precision: try arguments.precision(),
                                    template: try arguments.servedTemplate())
            return { scorer.score(scorer.preparer.render($0.items)) }
        case (nil, let endpoint?):
            guard !arguments.isSet("precision") else { throw arguments.usageError("--precision applies to --model; a server has its own") }
            guard !arguments.isSet("template") else { throw arguments.usageError("--template applies to --model; a server has its own") }
            let options = try ClientOptions.settings(arguments)
            let client = try ScoringClient(endpoint: endpoint, timeout: options.timeout, retries: options.retries,
                                           contactTimeout: options.contactTimeout, keys: options.keys)
            return { request in
                let reply = try client.rank(request)
                let cut = Set(reply.truncated)
                return reply.scores.indices.map { ScoredItem(score: reply.scores[$0], knownUser: reply.knownUser, truncated: cut.contains($0)) }
            }
        case (nil, nil): throw arguments.usageError("give --model DIR (in process) or --server ENDPOINT")
        case (_?, _?): throw arguments.usageError("give --model or --server, not both")
        }
    }

    /// The output line for one request: ranking best first (ties keep input order).
    static func resultLine(_ request: RankRequest, scored: [ScoredItem]) -> String {
        let order = scored.indices.sorted { scored[$0].score > scored[$1].score || (scored[$0].score == scored[$1].score && $0 < $1) }
        var w = JSONWriter()
        w.beginObject()
        w.key("known_user"); w.bool(scored.first?.knownUser ?? false)
        w.key("ranking"); w.beginArray()
        for index in order {
            w.beginObject()
            w.key("index"); w.number(index)
            w.key("score"); w.number(scored[index].score)
            w.key("text"); ChatTextJSON.reply(request.candidates[index], &w)
            w.endObject()
        }
        w.endArray()
        w.key("truncated"); w.beginArray()
        for index in scored.indices where scored[index].truncated { w.number(index) }
        w.endArray()
        w.key("user_id")
        if let user = request.user { w.string(user) } else { w.null() }
        w.endObject()
        return w.text + "\n"
    }

    static func readRequests(_ arguments: ParsedArguments) throws -> [RankRequest] {
        let candidates = arguments.positionalList("candidate")
        if let input = arguments.string("input") {
            guard candidates.isEmpty, !arguments.isSet("prompt") else {
                throw arguments.usageError("give either --input or --prompt with candidates, not both")
            }
            return try JSONLines.values(try InputFiles.read(input), name: input).map { line, value in
                try request(value, at: "\(input):\(line)")
            }
        }
        guard let prompt = arguments.string("prompt") else { throw arguments.usageError("missing --prompt (or --input)") }
        guard !candidates.isEmpty else { throw arguments.usageError("give at least one candidate reply") }
        let user = arguments.string("user", default: "")
        return [RankRequest(user: user, userInfo: arguments.string("user-info"), prompt: .text(prompt), candidates: candidates.map { .text($0) })]
    }

    /// A request from one JSONL line, checked as the server checks a rank request; errors name
    /// the place and the field.
    static func request(_ value: JSONValue, at place: String) throws -> RankRequest {
        guard let object = value.object else { throw CLIError("\(place): expected a JSON object, got \(value.kind.withArticle)") }
        do { return try RankRequest(object, maxCandidates: .max) } catch { throw CLIError("\(place): \(error.message)") }
    }
}
