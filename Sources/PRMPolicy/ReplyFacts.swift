import Foundation
import PRMCore

/// What a PPO iteration needs to know of every reply, whichever rank sampled it: the score, the
/// scored tokens (a minibatch's loss is a mean over them), and the length for the log.
struct ReplyFacts {
    var score: Float
    var tokens: Int
    /// Policy tokens before <|end|>, and words of the decoded reply.
    var lengthTokens: Double
    var lengthWords: Double

    /// Every reply's facts, in the iteration's order, on every rank; this rank contributes those
    /// of its `shard` (`scores`, `replies`, `texts` and `sequences` of its own replies).
    static func gather(scores: [Float], replies: [[Int32]], texts: [String], sequences: [PolicySequence], end: Int32,
                       shard: BatchShard, ranks: Ranks) throws -> [ReplyFacts] {
        let rows = scores.indices.flatMap { j in
            [Double(scores[j]), Double(sequences[j].scored.count), Double(replies[j].prefix { $0 != end }.count),
             Double(texts[j].split(whereSeparator: \.isWhitespace).count)]
        }
        let all = try ranks.gather(rows, of: shard, width: 4)
        return stride(from: 0, to: all.count, by: 4).map {
            ReplyFacts(score: Float(all[$0]), tokens: Int(all[$0 + 1]), lengthTokens: all[$0 + 2], lengthWords: all[$0 + 3])
        }
    }
}
