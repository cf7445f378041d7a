/// 64-bit FNV-1a, one value at a time: the hash behind `DataFingerprint` and `ModelFingerprint`.
public struct FNV1a: Sendable {
    public private(set) var hash: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func mix(_ value: UInt64) {
        hash ^= value
        hash = hash &* 0x100_0000_01b3
    }
}
