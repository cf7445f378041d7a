import Foundation

/// Sizes in bytes as people write them.
enum ByteSize {
    private static let units: [(suffix: String, factor: Int)] = [
        ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
        ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000),
        ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("T", 1 << 40), ("B", 1),
    ]

    /// Bytes of "512MiB", "1.5GiB", "64M" or "1048576"; nil when malformed, negative or too large.
    static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let (number, factor) = units.first { trimmed.hasSuffix($0.suffix) }
            .map { (trimmed.dropLast($0.suffix.count).trimmingCharacters(in: .whitespaces), $0.factor) } ?? (trimmed, 1)
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              let value = Double(number), value.isFinite else { return nil }
        let bytes = (value * Double(factor)).rounded(.down)
        guard bytes < Double(Int.max) else { return nil }
        return Int(bytes)
    }

    /// "3.1 GiB", for messages.
    static func describe(_ bytes: Int) -> String {
        let gib = Double(bytes) / Double(1 << 30)
        return gib >= 1 ? String(format: "%.1f GiB", gib) : String(format: "%.0f MiB", Double(bytes) / Double(1 << 20))
    }
}
