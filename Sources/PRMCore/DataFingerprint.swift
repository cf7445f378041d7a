/// Identifies a run's training data: a count and FNV-1a over it, so `--resume` refuses other data.
public struct DataFingerprint: Codable, Equatable, Sendable {
    public var count: Int
    public var fingerprint: String

    /// FNV-1a over each item's `label` bytes, then each of its id lists, length first: the same
    /// data always gives the same string (the hash `prm train` and `prm sft` have always saved).
    public init<Items: Collection>(_ items: Items, label: (Items.Element) -> String = { _ in "" },
                                   parts: (Items.Element) -> [[Int32]]) {
        var fnv = FNV1a()
        for item in items {
            for byte in label(item).utf8 { fnv.mix(UInt64(byte)) }
            for part in parts(item) {
                fnv.mix(UInt64(part.count))
                for id in part { fnv.mix(UInt64(UInt32(bitPattern: id))) }
            }
        }
        count = items.count
        fingerprint = String(fnv.hash, radix: 16)
    }
}
