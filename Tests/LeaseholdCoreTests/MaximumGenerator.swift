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
