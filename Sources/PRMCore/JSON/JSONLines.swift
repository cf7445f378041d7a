/// Receives the non-blank lines of a JSONL stream from `JSONLineSplitter`.
public protocol JSONLineConsumer {
    /// `bytes` is line `line` (1-based) without its line end and without a leading byte-order
    /// mark; `dropped` bytes were cut from its front, so byte positions in messages can match the file.
    mutating func consume(line: Int, bytes: UnsafeBufferPointer<UInt8>, dropped: Int)
}

/// Splits JSONL bytes, fed in chunks of any size, into lines for a consumer: the one JSONL line
/// reader of prm (training data, `prm score`/`prm embed` input). Lines may end in LF or CRLF,
/// the last needs no line end, a UTF-8 byte-order mark on line 1 is dropped, and blank
/// (whitespace-only) lines are counted but not passed on.
public struct JSONLineSplitter<Consumer: JSONLineConsumer> {
    public var consumer: Consumer
    /// Lines seen so far, blank ones included.
    public private(set) var lineCount = 0
    /// Lines passed to the consumer.
    public private(set) var nonBlankLines = 0
    /// The unfinished last line of the previous chunk.
    private var carry: [UInt8] = []

    public init(_ consumer: Consumer) { self.consumer = consumer }

    public mutating func feed(_ chunk: UnsafeRawBufferPointer) {
        let bytes = chunk.bindMemory(to: UInt8.self)
        var start = 0
        while let newline = bytes[start...].firstIndex(of: JSONByte.newline) {
            if carry.isEmpty {
                emit(UnsafeBufferPointer(rebasing: bytes[start..<newline]))
            } else {
                // Move the partial line out so `emit` can mutate self while reading it.
                var joined: [UInt8] = []
                swap(&joined, &carry)
                joined.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<newline]))
                joined.withUnsafeBufferPointer { emit($0) }
            }
            start = newline + 1
        }
        carry.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start...]))
    }

    /// The last line need not end with a newline.
    public mutating func endOfInput() {
        guard !carry.isEmpty else { return }
        var last: [UInt8] = []
        swap(&last, &carry)
        last.withUnsafeBufferPointer { emit($0) }
    }

    private mutating func emit(_ raw: UnsafeBufferPointer<UInt8>) {
        lineCount += 1
        var bytes = raw
        var dropped = 0
        if lineCount == 1, bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF {
            bytes = UnsafeBufferPointer(rebasing: bytes[3...])
            dropped = 3
        }
        if let last = bytes.last, last == JSONByte.carriageReturn {
            bytes = UnsafeBufferPointer(rebasing: bytes[..<(bytes.count - 1)])
        }
        if bytes.allSatisfy(JSONByte.isJSONWhitespace) { return }
        nonBlankLines += 1
        consumer.consume(line: lineCount, bytes: bytes, dropped: dropped)
    }
}

/// A JSONL stream parsed into whole values, one per non-blank line; the first bad line stops it
/// with an error naming the line (used where one bad line means the input is wrong).
public struct JSONValueLines: JSONLineConsumer {
    public private(set) var values: [(line: Int, value: JSONValue)] = []
    public private(set) var firstError: (line: Int, error: JSONParseError)?

    public init() {}

    public mutating func consume(line: Int, bytes: UnsafeBufferPointer<UInt8>, dropped: Int) {
        guard firstError == nil else { return }
        do {
            values.append((line, try JSONReader.parse(bytes)))
        } catch {
            switch error {
            case .invalidUTF8(let offset): firstError = (line, .invalidUTF8(offset: offset + dropped))
            case .syntax(let e): firstError = (line, .syntax(JSONSyntaxError(offset: e.offset + dropped, message: e.message)))
            }
        }
    }

    /// Parses all of `data`, stopping at the first bad line (then `firstError` says which).
    public static func parse(_ data: UnsafeRawBufferPointer) -> JSONValueLines {
        var splitter = JSONLineSplitter(JSONValueLines())
        splitter.feed(data)
        splitter.endOfInput()
        return splitter.consumer
    }
}
