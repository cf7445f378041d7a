import Foundation

/// The pipeline of a `tokenizer.json`, run as the reference's `encode_single_sequence`:
/// 1. added tokens with `normalized: false` are found in the raw text and map straight to ids;
/// 2. each remaining segment is normalized, then searched for `normalized: true` added tokens;
/// 3. the rest is pre-tokenized into pieces and each piece goes through the model;
/// 4. with `addSpecialTokens`, the post-processor wraps the ids.
struct PretrainedTokenizer: Tokenizer {
    let normalizer: (any Normalizer)?
    let preTokenizer: (any PreTokenizer)?
    let model: any TokenModel
    let postProcessor: (any PostProcessor)?
    let decoder: (any TokenDecoder)?
    private let rawMatcher: AddedTokenMatcher?
    private let normalizedMatcher: AddedTokenMatcher?
    /// Added tokens by content and by id (ids resolved as the reference does: the model's id
    /// when the vocabulary has the content).
    private let addedIDs: [String: Int]
    private let addedTokens: [Int: String]
    private let specialTokens: Set<String>
    let padTokenID: Int?
    let vocabularySize: Int

    init(_ file: TokenizerFile) throws {
        normalizer = file.normalizer
        preTokenizer = file.preTokenizer
        model = file.model
        postProcessor = file.postProcessor
        decoder = file.decoder

        var addedIDs: [String: Int] = [:], addedTokens: [Int: String] = [:]
        var special = Set<String>()
        var raw: [(token: AddedToken, id: Int, pattern: String)] = []
        var normalized: [(token: AddedToken, id: Int, pattern: String)] = []
        // Ids as the reference's AddedVocabulary::add_tokens assigns them when loading: the
        // existing id when the content is already known, else the next id from the model's
        // vocabulary size on, in file order. The file's `id` only triggers a warning there, so it
        // is not used; in well-formed files the two agree.
        var nextID = file.model.vocabularyCount
        for token in file.addedTokens where !token.content.isEmpty {
            let id: Int
            if let known = addedIDs[token.content] ?? file.model.id(of: token.content) {
                id = known
            } else {
                id = nextID
                nextID += 1
            }
            addedIDs[token.content] = id
            if token.special { special.insert(token.content) }
            if token.normalized {
                // Normalized tokens are searched for in normalized text, so in normalized form,
                // and the reference decodes them in that form too (`simple_id_to_token` reads
                // its normalized cache; a special one then no longer matches the special set by
                // content, so skipSpecialTokens keeps it, as there).
                let form = Self.normalize(token.content, with: file.normalizer)
                addedTokens[id] = form
                normalized.append((token, id, form))
            } else {
                addedTokens[id] = token.content
                raw.append((token, id, token.content))
            }
        }
        rawMatcher = AddedTokenMatcher(raw)
        normalizedMatcher = AddedTokenMatcher(normalized)
        self.addedIDs = addedIDs
        self.addedTokens = addedTokens
        specialTokens = special
        vocabularySize = max(file.model.idCount, (addedTokens.keys.max() ?? -1) + 1)

        if let padding = file.padding {
            padTokenID = padding.padToken.flatMap { addedIDs[$0] ?? file.model.id(of: $0) } ?? padding.padID
        } else if file.model is WordPieceModel {
            padTokenID = addedIDs["[PAD]"] ?? file.model.id(of: "[PAD]")
        } else {
            padTokenID = nil
        }
    }

    private static func normalize(_ text: String, with normalizer: (any Normalizer)?) -> String {
        guard let normalizer else { return text }
        let scalars = text.unicodeScalars.map(\.value)
        var output: [UInt32] = []
        scalars.withUnsafeBufferPointer { normalizer.normalize($0, into: &output) }
        return Self.string(output)
    }

    static func string(_ scalars: [UInt32]) -> String {
        var view = String.UnicodeScalarView()
        for code in scalars { if let scalar = Unicode.Scalar(code) { view.append(scalar) } }
        return String(view)
    }

    // MARK: Encoding

    func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        var workspace = Workspace()
        let ids = encode(text, workspace: &workspace)
        return addSpecialTokens ? addingSpecialTokens(ids) : ids
    }

    func encodeBatch(_ texts: [String], addSpecialTokens: Bool) -> [[Int]] {
        var results = [[Int]](repeating: [], count: texts.count)
        // Chunks of texts per task keep the dispatch overhead small next to the work.
        let chunk = 16
        let chunks = (texts.count + chunk - 1) / chunk
        results.withUnsafeMutableBufferPointer { buffer in
            let output = SendableBuffer(buffer)
            DispatchQueue.concurrentPerform(iterations: chunks) { index in
                var workspace = Workspace()
                for item in index * chunk..<min(texts.count, (index + 1) * chunk) {
                    let ids = encode(texts[item], workspace: &workspace)
                    output.buffer[item] = addSpecialTokens ? addingSpecialTokens(ids) : ids
                }
            }
        }
        return results
    }

    /// Buffers reused across the segments (and, in a batch, the texts) one thread encodes.
    struct Workspace {
        var raw: [UInt32] = []
        var normalized: [UInt32] = []
        var pieces = Pieces()
    }

    private func encode(_ text: String, workspace: inout Workspace) -> [Int] {
        var ids: [Int] = []
        var raw = workspace.raw
        raw.removeAll(keepingCapacity: true)
        for scalar in text.unicodeScalars { raw.append(scalar.value) }
        var normalized = workspace.normalized
        var pieces = workspace.pieces
        raw.withUnsafeBufferPointer { raw in
            if let rawMatcher {
                rawMatcher.split(raw) { range, id in
                    if let id { ids.append(id); return }
                    encodeSegment(UnsafeBufferPointer(rebasing: raw[range]), &normalized, &pieces, &ids)
                }
            } else {
                encodeSegment(raw, &normalized, &pieces, &ids)
            }
        }
        workspace = Workspace(raw: raw, normalized: normalized, pieces: pieces)
        return ids
    }

    private func encodeSegment(_ segment: UnsafeBufferPointer<UInt32>, _ normalized: inout [UInt32],
                               _ pieces: inout Pieces, _ ids: inout [Int]) {
        normalized.removeAll(keepingCapacity: true)
        if let normalizer {
            normalizer.normalize(segment, into: &normalized)
        } else {
            normalized.append(contentsOf: segment)
        }
        // The reference drops splits that normalize to nothing before pre-tokenizing.
        guard !normalized.isEmpty else { return }
        normalized.withUnsafeBufferPointer { text in
            if let normalizedMatcher {
                normalizedMatcher.split(text) { range, id in
                    if let id { ids.append(id); return }
                    tokenize(UnsafeBufferPointer(rebasing: text[range]), &pieces, &ids)
                }
            } else {
                tokenize(text, &pieces, &ids)
            }
        }
    }

    private func tokenize(_ text: UnsafeBufferPointer<UInt32>, _ pieces: inout Pieces, _ ids: inout [Int]) {
        pieces.removeAll()
        if let preTokenizer {
            preTokenizer.preTokenize(text, into: &pieces)
        } else {
            pieces.append(text)
        }
        pieces.scalars.withUnsafeBufferPointer { scalars in
            for range in pieces.ranges {
                model.tokenize(UnsafeBufferPointer(rebasing: scalars[range]), into: &ids)
            }
        }
    }

    // MARK: Special tokens, vocabulary

    func addingSpecialTokens(_ ids: [Int]) -> [Int] {
        postProcessor?.addingSpecialTokens(ids) ?? ids
    }

    var specialTokensPerSequence: Int { postProcessor?.specialTokenCount ?? 0 }

    func id(of token: String) -> Int? { addedIDs[token] ?? model.id(of: token) }

    /// The token for an id as the reference's decode finds it: added tokens first.
    func token(of id: Int) -> String? { addedTokens[id] ?? model.token(of: id) }

    // MARK: Decoding

    /// The reference's `decode`: ids → tokens (unknown ids skipped), special tokens dropped on
    /// request (by content, as `is_special_token` does), then the decoder, or tokens joined
    /// with spaces when the file has none.
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            guard let token = token(of: id) else { continue }
            if skipSpecialTokens && specialTokens.contains(token) { continue }
            tokens.append(token)
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decode(tokens)
    }
}

/// Lets the batch workers write disjoint elements of one buffer.
private struct SendableBuffer<Element>: @unchecked Sendable {
    // @unchecked: each concurrentPerform iteration writes only its own indices.
    let buffer: UnsafeMutableBufferPointer<Element>
    init(_ buffer: UnsafeMutableBufferPointer<Element>) { self.buffer = buffer }
}
