// CPU instructions Swift has no spelling for, as static inline functions: the Clang importer
// compiles them into the Swift caller, so each is one instruction in the loop that uses it.

// prefetcht1: starts loading the cache line at `address` into L2 without waiting for it.
// StreamedLinear's few-row products issue it a few KB ahead of the weights they read: with
// 2–8 input rows a core is busy with multiply-adds long enough that the hardware prefetcher
// alone leaves it stalled on every new stretch of weights (bench/results/decode_profile.md).
static inline void prm_prefetch_l2(const void *address) { __builtin_prefetch(address, 0, 2); }
