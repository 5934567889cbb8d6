/// SplitMix64: a tiny seeded `RandomNumberGenerator`, so jitter is the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Always the largest value: `random(in: 0...n)` then returns `n`, the top of the jitter range.
///
/// It keeps a call count only so that it is not zero-sized: ThreadSanitizer's instrumentation of
/// `inout` accesses faults on the dangling address Swift uses for zero-sized values.
struct MaximumGenerator: RandomNumberGenerator {
    private(set) var calls = 0

    mutating func next() -> UInt64 {
        calls += 1
        return .max
    }
}
