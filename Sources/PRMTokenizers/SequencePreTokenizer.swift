import Foundation

/// The `Sequence` pre-tokenizer: each pre-tokenizer splits every piece the previous one made.
struct SequencePreTokenizer: PreTokenizer, Decodable {
    let stages: [any PreTokenizer]

    private enum CodingKeys: String, CodingKey { case pretokenizers }

    init(_ stages: [any PreTokenizer]) { self.stages = stages }

    init(from decoder: any Decoder) throws {
        let keys = try decoder.container(keyedBy: CodingKeys.self)
        var list = try keys.nestedUnkeyedContainer(forKey: .pretokenizers)
        var stages: [any PreTokenizer] = []
        while !list.isAtEnd { stages.append(try Sections.preTokenizer.make(from: list.superDecoder())) }
        self.init(stages)
    }

    func preTokenize(_ text: UnsafeBufferPointer<UInt32>, into pieces: inout Pieces) {
        var current = Pieces()
        current.append(text)
        for stage in stages {
            var next = Pieces()
            current.scalars.withUnsafeBufferPointer { scalars in
                for range in current.ranges { stage.preTokenize(UnsafeBufferPointer(rebasing: scalars[range]), into: &next) }
            }
            current = next
        }
        current.scalars.withUnsafeBufferPointer { scalars in
            for range in current.ranges { pieces.append(scalars[range]) }
        }
    }
}
