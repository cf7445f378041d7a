import Foundation

/// The perplexity a model that ignores context would reach: token frequencies of the training
/// replies with add-one smoothing over the vocabulary, p(v) = (n_v + 1) / (N + V). SFT reports its
/// validation perplexity beside this one: a language model has to beat it to use its context.
public struct UnigramBaseline: Sendable {
    private let logProbabilities: [Double]

    /// Counts the scored tokens of `train` over a vocabulary of `vocabularySize` ids.
    public init(_ train: [PolicySequence], vocabularySize: Int) {
        var counts = [Double](repeating: 1, count: vocabularySize)
        var total = Double(vocabularySize)
        for sequence in train {
            for index in sequence.scored {
                counts[Int(sequence.tokens[index])] += 1
                total += 1
            }
        }
        logProbabilities = counts.map { Foundation.log($0 / total) }
    }

    /// exp of the mean negative log-probability of the scored tokens of `sequences`.
    public func perplexity(_ sequences: [PolicySequence]) -> Double {
        var sum = 0.0, count = 0
        for sequence in sequences {
            for index in sequence.scored {
                sum -= logProbabilities[Int(sequence.tokens[index])]
                count += 1
            }
        }
        return Foundation.exp(sum / Double(max(count, 1)))
    }
}
