import Foundation

/// All trainable tensors of a model in one contiguous buffer, with a gradient buffer of the same
/// layout (llm.c's habit): the optimizer is one flat loop, zeroing gradients is one memset and a
/// checkpoint is one pass over named views.
///
/// The gradient buffer is allocated on first use, so a process that only scores never holds a
/// second copy of the weights' size.
public final class Parameters: @unchecked Sendable {
    /// Which optimizer group a tensor belongs to: groups get their own learning rate and can be frozen.
    /// `mixture` holds the cluster user model's per-user logits, which need a faster rate than the
    /// centres to leave their start (see TrainingSettings.mixtureLearningRateScale).
    public enum Group: String, Codable, Sendable, CaseIterable {
        case backbone, user, head, mixture
    }

    public struct Entry: Sendable {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public let count: Int
        public let group: Group
        /// AdamW's decoupled weight decay applies to matrices, not to biases, gains or user tables.
        public let decays: Bool
    }

    /// A handle to one named tensor; cheap to store in layer structs.
    public struct Handle: Hashable, Sendable {
        public let index: Int
        public init(index: Int) { self.index = index }
    }

    /// Collects tensor declarations before the buffers are allocated.
    public struct Layout {
        public private(set) var entries: [Entry] = []
        private var total = 0
        private var names: Set<String> = []

        public init() {}

        /// Declares a tensor; names must be unique (they are the checkpoint keys).
        public mutating func add(_ name: String, _ shape: [Int], group: Group = .backbone, decays: Bool? = nil) -> Handle {
            precondition(!names.contains(name), "duplicate parameter name \(name)")
            names.insert(name)
            let count = shape.reduce(1, *)
            entries.append(Entry(name: name, shape: shape, offset: total, count: count, group: group,
                                 decays: decays ?? (shape.count >= 2 && group == .backbone)))
            total += count
            return Handle(index: entries.count - 1)
        }

        public var count: Int { total }
    }

    public let entries: [Entry]
    public let values: Tensor
    private let indexByName: [String: Int]
    // Guards the first allocation of `storedGrads` (backward passes may first ask from any thread).
    private let gradsLock = NSLock()
    private var storedGrads: Tensor?

    public init(_ layout: Layout) {
        entries = layout.entries
        values = Tensor(shape: [layout.count])
        indexByName = Dictionary(uniqueKeysWithValues: layout.entries.enumerated().map { ($1.name, $0) })
    }

    /// The gradients, same layout as `values`; allocated (zeroed) on first access.
    public var grads: Tensor {
        gradsLock.lock()
        defer { gradsLock.unlock() }
        if let storedGrads { return storedGrads }
        let grads = Tensor(shape: [values.count])
        storedGrads = grads
        return grads
    }

    /// Whether the gradient buffer exists yet (inference never creates it).
    public var hasGradients: Bool {
        gradsLock.lock()
        defer { gradsLock.unlock() }
        return storedGrads != nil
    }

    public var count: Int { values.count }

    /// Called by a backbone's backward pass with each range of `grads` it has finished, so that
    /// a data-parallel step starts summing it over the ranks while the pass goes on
    /// (`OverlappedSum`). A trainer keeps it set for the step's last backward pass only: an
    /// earlier micro-batch's pass finishes nothing (the later ones add to the same gradients).
    public var onGradientsFinished: ((Range<Int>) -> Void)?

    /// Changes each time the values are changed as a whole (loading, an optimizer step), so that
    /// copies derived from them (a backbone's inference layout) know when to be remade. Code that
    /// writes values through pointers outside the loaders and the optimizer calls `markChanged()`.
    public private(set) var version = 0

    public func markChanged() { version &+= 1 }

    public func entry(_ handle: Handle) -> Entry { entries[handle.index] }
    public func handle(named name: String) -> Handle? { indexByName[name].map(Handle.init) }

    /// Pointer to the tensor's values.
    public func value(_ handle: Handle) -> UnsafeMutablePointer<Float> { values.data + entries[handle.index].offset }
    /// Pointer to the tensor's gradient.
    public func grad(_ handle: Handle) -> UnsafeMutablePointer<Float> { grads.data + entries[handle.index].offset }

    /// A tensor view sharing storage with the parameter buffer.
    public func tensor(_ handle: Handle) -> Tensor {
        let e = entries[handle.index]
        return Tensor(viewOf: values, offset: e.offset, shape: e.shape)
    }

    /// The FNV-1a state over every value's bit pattern in order (what `ModelFingerprint` starts
    /// from). Once values were released (`releaseValues`), the state of the values as they were
    /// just before the first release.
    public func valuesHash() -> FNV1a {
        if let hashBeforeRelease { return hashBeforeRelease }
        var fnv = FNV1a()
        for i in 0..<values.count { fnv.mix(UInt64(values.data[i].bitPattern)) }
        return fnv
    }

    /// Whether some values were given back to the system (`releaseValues`).
    public var hasReleasedValues: Bool { hashBeforeRelease != nil }
    private var hashBeforeRelease: FNV1a?

    /// Gives the memory of `count` values from `start` (inside `values`) back to the system, for
    /// an inference-only process that has prepared its own copy of a matrix (`--precision` bf16
    /// or int8) and never reads the fp32 one again: the whole pages inside the range are dropped
    /// (`madvise(MADV_DONTNEED)`), so the resident size falls at once and those values read as
    /// zeros from then on. The values' hash is taken before the first release, so that a model's
    /// fingerprint names the weights it was loaded with.
    public func releaseValues(_ start: UnsafeMutablePointer<Float>, count: Int) {
        precondition(start >= values.data && start + count <= values.data + values.count, "releasing values outside the buffer")
        if hashBeforeRelease == nil { hashBeforeRelease = valuesHash() }
        let page = UInt(sysconf(Int32(_SC_PAGESIZE)))
        let first = (UInt(bitPattern: start) + page - 1) / page * page
        let end = UInt(bitPattern: start + count) / page * page
        guard end > first, let pages = UnsafeMutableRawPointer(bitPattern: first) else { return }
        // Anonymous private memory (the buffer) can always be dropped; failure would be a bad range.
        precondition(madvise(pages, Int(end - first), MADV_DONTNEED) == 0, "madvise failed: errno \(errno)")
    }

    /// Zeroes the gradients; before any exist there is nothing to clear.
    public func zeroGrad() {
        gradsLock.lock()
        let grads = storedGrads
        gradsLock.unlock()
        grads?.zero()
    }
}
