/// When the worker's read loop reads and how many entries it asks for: the loop's decisions as a
/// value with no I/O, so they are unit-tested apart from Redis and the clock.
///
/// A read is one round trip whatever it carries, so a busy worker should not read for every
/// entry that finishes: while fewer than a quarter of its slots are free (and some are busy), it
/// waits up to ``coalescing`` for more to free up, then reads what is free. With no slot free it
/// waits for an entry to finish. A failed read is retried after a backoff that doubles from 200 ms
/// up to 5 s, and starts again after a read that succeeds.
struct ReadPacing: Sendable {
    /// What the loop does next.
    enum Step: Equatable, Sendable {
        /// Every slot is busy: wait until an entry finishes (or the shutdown signal).
        case waitForAnEntry
        /// Few slots free: wait until `until` for more to free up, and wake the loop then.
        case startCoalescing(until: ContinuousClock.Instant)
        /// Still inside the coalescing wait started earlier: wait for the next wake-up.
        case keepCoalescing
        /// Read up to `count` entries now.
        case read(count: Int)
    }

    /// The worker's slots (``WorkerConfiguration/concurrency``).
    let concurrency: Int
    /// The longest a busy worker's read waits for more free slots.
    let coalescing: Duration
    /// The end of the coalescing wait under way, if one is.
    private(set) var coalescingUntil: ContinuousClock.Instant?
    /// Reads failed in a row.
    private(set) var failures = 0

    init(concurrency: Int, coalescing: Duration) {
        precondition(concurrency > 0, "a worker has at least one slot")
        self.concurrency = concurrency
        self.coalescing = coalescing
    }

    /// Free slots below which a busy worker coalesces its reads.
    var enough: Int { max(1, concurrency / 4) }

    /// The next step, with `inFlight` entries being processed at `now`.
    mutating func next(inFlight: Int, now: ContinuousClock.Instant) -> Step {
        let free = concurrency - inFlight
        guard free > 0 else { return .waitForAnEntry }
        if free < enough && inFlight > 0 {
            guard let until = coalescingUntil else {
                let until = now + coalescing
                coalescingUntil = until
                return .startCoalescing(until: until)
            }
            if now < until { return .keepCoalescing }
        }
        coalescingUntil = nil
        return .read(count: free)
    }

    /// A read answered: the failure backoff starts again.
    mutating func readSucceeded() { failures = 0 }

    /// A read failed: how long to wait before the next one.
    mutating func readFailed() -> Duration {
        failures += 1
        return .milliseconds(min(5_000, 100 * (1 << min(failures, 6))))
    }
}
