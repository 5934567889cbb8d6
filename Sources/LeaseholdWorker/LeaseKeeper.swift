import LeaseholdQueue
import LeaseholdRedis
import Logging
import Synchronization

/// Every lease this worker holds, and the one heartbeat that keeps them all: every
/// ``WorkerConfiguration/heartbeat`` it renews the lot in one script call per
/// ``renewalBatch`` leases (``Lease/renew(_:consumer:group:via:)``), which also resets the idle
/// time of each lease's stream entry so the supervisor never takes a live worker's entry for
/// stalled, however long its transaction runs.
///
/// One timer per worker instead of one per entry: the cost of keeping leases is a round trip per
/// heartbeat interval, whatever the number of entries in flight.
final class LeaseKeeper: Sendable {
    /// The most leases renewed by one script call (a script blocks Redis while it runs).
    static let renewalBatch = 256

    private struct Held {
        let lease: Lease
        let entry: StreamEntry
        /// Its completion (which releases the lease) is under way: a renewal that finds the lease
        /// gone is then no news.
        var completing = false
    }

    private let held = Mutex<[String: Held]>([:])
    private let calls = Atomic<Int>(0)

    /// Renewal script calls made so far (one per heartbeat while at most ``renewalBatch`` leases are held).
    var renewalCalls: Int { calls.load(ordering: .relaxed) }

    /// Leases held now.
    var count: Int { held.withLock { $0.count } }

    /// Starts renewing `lease` (just taken) with the heartbeat.
    func hold(_ lease: Lease, for entry: StreamEntry) {
        held.withLock { $0[lease.owner] = Held(lease: lease, entry: entry) }
    }

    /// The lease is about to be released by the entry's completion.
    func completing(_ lease: Lease) {
        held.withLock { $0[lease.owner]?.completing = true }
    }

    /// Stops renewing `lease` (released, or given up).
    func drop(_ lease: Lease) {
        _ = held.withLock { $0.removeValue(forKey: lease.owner) }
    }

    /// Renews every lease held, and returns those found lost (expired, perhaps taken by another
    /// worker) that are still being worked on. A lost lease is safe — the inbox keeps the work
    /// exactly-once — but worth a warning; it is not renewed again.
    func renewAll(consumer: String, redis: some RedisCommandRunner) async throws -> [Lease] {
        let snapshot = held.withLock { Array($0.values) }
        var lost: [Lease] = []
        var start = snapshot.startIndex
        while start < snapshot.endIndex {
            let chunk = Array(snapshot[start..<min(start + Self.renewalBatch, snapshot.endIndex)])
            start += chunk.count
            calls.add(1, ordering: .relaxed)
            let stillHeld = try await Lease.renew(chunk.map { ($0.lease, $0.entry) }, consumer: consumer, via: redis)
            for (item, isHeld) in zip(chunk, stillHeld) where !isHeld {
                let working = held.withLock { held -> Bool in
                    guard let current = held[item.lease.owner], !current.completing else { return false }
                    held.removeValue(forKey: item.lease.owner)
                    return true
                }
                if working { lost.append(item.lease) }
            }
        }
        return lost
    }

    /// The heartbeat: renews every held lease each `interval` until cancelled.
    func run(every interval: Duration, consumer: String, redis: some RedisCommandRunner, logger: Logger) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            guard count > 0 else { continue }
            do {
                for lease in try await renewAll(consumer: consumer, redis: redis) {
                    // Guarantee 4 (Runbooks/architecture.md): losing the lease is safe (the inbox
                    // decides), but worth knowing.
                    logger.warning(
                        "lease lost while the transaction runs; the inbox keeps it exactly-once",
                        metadata: ["lease": "\(lease.key)"])
                }
            } catch {
                logger.warning("lease heartbeat failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
