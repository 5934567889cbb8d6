import Foundation
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import Logging
import Metrics
import Synchronization

/// Finds entries whose worker stopped acknowledging them and decides their fate: back on the
/// stream later (the retry schedule) or into the dead letters.
///
/// An entry is stalled when it has been pending longer than the visibility timeout **and** its
/// lease is not held. A live worker's heartbeat renews its lease and, in the same script, resets
/// the entry's idle time (``Lease/renew(resetting:consumer:group:via:)``), so its entries never
/// even show up as idle however long they take; a dead worker's lease expires (lease TTL <
/// visibility timeout) and its entries are reclaimed.
///
/// ## One atomic claim
///
/// The lease check and the claim are one Lua script (``claimScript``): if the lease key exists the
/// entry is left alone, else it is `XCLAIM`ed with min-idle-time = the visibility timeout, so an
/// entry a worker touched meanwhile (a heartbeat, a re-read) is not taken either. A worker that
/// takes the lease cannot slip in between a check and a claim.
///
/// ## Scanning with a cursor
///
/// Each pass reads at most ``SupervisorConfiguration/batchSize`` idle entries per stream with
/// `XPENDING <stream> workers IDLE <visibility> (<last id seen> + <batch>`, continuing after the
/// last entry the previous pass looked at and starting again at `-` once a read comes back short
/// (the end of the pending list). Entries left to live workers therefore cannot hide stalled ones
/// behind them: every idle entry is looked at within ⌈idle entries / batch⌉ + 1 passes.
struct Reclaimer: Sendable {
    let configuration: SupervisorConfiguration
    let redis: RedisClient
    let postgres: PostgresClient
    let scheduler: RetryScheduler
    let deadLetters: DeadLetterStore
    let logger: Logger
    /// Per stream, the last pending entry ID a pass looked at; absent: start at the beginning.
    private let cursors = Cursors()

    init(
        configuration: SupervisorConfiguration, redis: RedisClient, postgres: PostgresClient,
        scheduler: RetryScheduler,
        deadLetters: DeadLetterStore, logger: Logger
    ) {
        self.configuration = configuration
        self.redis = redis
        self.postgres = postgres
        self.scheduler = scheduler
        self.deadLetters = deadLetters
        self.logger = logger
    }

    /// What one pass did, for logs and tests.
    struct Pass: Sendable, Equatable {
        var retried = 0
        var deadLettered = 0
        var leftToLiveWorkers = 0
        var vanished = 0
        /// Idle pending entries looked at.
        var examined = 0
    }

    private final class Cursors: Sendable {
        let positions = Mutex<[String: String]>([:])
    }

    /// The cursor of `stream`: the last entry ID the previous pass looked at, `nil` at the start.
    func cursor(of stream: String) -> String? {
        cursors.positions.withLock { $0[stream] }
    }

    func reclaim(stream: String) async throws -> Pass {
        var pass = Pass()
        let visibility = configuration.visibilityTimeout.redisMilliseconds
        let start = cursor(of: stream).map { "(\($0)" } ?? "-"
        let pending = try await redis.send(
            "XPENDING", stream, RedisKeys.consumerGroup, "IDLE", visibility, start, "+", configuration.batchSize)
        let items = pending.array ?? []
        var lastSeen: String?
        for item in items {
            guard let fields = item.array, fields.count >= 4, let id = fields[0].string else { continue }
            lastSeen = id
            pass.examined += 1
            try await handle(id: id, stream: stream, pass: &pass)
        }
        // A short read reached the end of the pending list: the next pass starts over.
        let next = items.count < configuration.batchSize ? nil : lastSeen
        cursors.positions.withLock { $0[stream] = next }
        return pass
    }

    /// What ``claimScript`` found.
    enum Claim: Sendable, Equatable {
        /// Claimed for this supervisor. The entry's state just before the claim: its consumer (the
        /// worker that stopped responding), how long it had been idle, and its delivery count.
        case claimed(consumer: String, idle: Int64, deliveries: Int64)
        /// Its lease is held: a live worker has it. Left alone.
        case leased
        /// No longer pending, or idle less than the minimum (someone touched it meanwhile).
        case notIdle
    }

    // KEYS: stream, lease (absent for an entry that has no key to lease). ARGV: group, claiming
    // consumer, min-idle-time (ms), entry id.
    // Reads the entry's pending state (only if idle at least min-idle-time), then, unless the
    // lease exists, XCLAIMs it with the same min-idle-time. JUSTID: the claim is not a delivery.
    // Returns {1, consumer, idle, deliveries} claimed, {2, …} leased, {0} not idle or not pending.
    static let claimScript = RedisScript(
        """
        local p = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], ARGV[4], ARGV[4], 1)
        if #p == 0 then return {0} end
        if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then return {2, p[1][2], p[1][3], p[1][4]} end
        local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'JUSTID')
        if #claimed == 0 then return {0} end
        return {1, p[1][2], p[1][3], p[1][4]}
        """)

    /// Claims entry `id` of `stream` for `consumer` if it has been idle at least `minIdle` and
    /// `leaseKey` (when given) does not exist, atomically (``claimScript``).
    static func claim(
        id: String, stream: String, leaseKey: String?, group: String = RedisKeys.consumerGroup, consumer: String,
        minIdle: Duration, via runner: some RedisCommandRunner
    ) async throws -> Claim {
        let reply = try await runner.evaluate(
            claimScript, keys: [stream] + (leaseKey.map { [$0] } ?? []),
            arguments: [group, consumer, minIdle.redisMilliseconds, id])
        guard let parts = reply.array, let status = parts.first?.int else {
            throw RedisError(source: .server, code: .proto, message: "reclaim script returned \(reply)")
        }
        switch status {
        case 0: return .notIdle
        case 2: return .leased
        case 1:
            return .claimed(
                consumer: parts.count > 1 ? parts[1].string ?? "?" : "?",
                idle: parts.count > 2 ? parts[2].int ?? 0 : 0, deliveries: parts.count > 3 ? parts[3].int ?? 0 : 0)
        default:
            throw RedisError(source: .server, code: .proto, message: "reclaim script returned \(reply)")
        }
    }

    private func handle(id: String, stream: String, pass: inout Pass) async throws {
        let keys = configuration.keys
        let minIdle = configuration.visibilityTimeout
        let supervisor = configuration.consumerName
        // The entry's fields name its lease; they never change, so reading them first is safe.
        let range = try await redis.send("XRANGE", stream, id, id)
        guard let raw = range.array?.first else {
            // Trimmed or deleted while pending: nothing to process, acknowledge it.
            _ = try await redis.send("XACK", stream, RedisKeys.consumerGroup, id)
            pass.vanished += 1
            return
        }
        let entry: StreamEntry
        do {
            entry = try StreamEntry(stream: stream, reply: raw)
        } catch {
            let claim = try await Self.claim(
                id: id, stream: stream, leaseKey: nil, consumer: supervisor, minIdle: minIdle, via: redis)
            guard case .claimed(let consumer, _, _) = claim else { return }
            try await deadLetters.deadLetterUndecodable(error, worker: consumer, postgres: postgres, redis: redis)
            pass.deadLettered += 1
            return
        }
        let claim = try await Self.claim(
            id: id, stream: stream, leaseKey: keys.lease(entry.key, in: stream), consumer: supervisor,
            minIdle: minIdle, via: redis)
        let consumer: String
        let idle: Int64
        let deliveries: Int64
        switch claim {
        case .leased:
            pass.leftToLiveWorkers += 1
            return
        case .notIdle:
            return  // acknowledged or touched meanwhile
        case .claimed(let owner, let idleTime, let count):
            (consumer, idle, deliveries) = (owner, idleTime, count)
        }

        let delivered = "\(deliveries) \(deliveries == 1 ? "delivery" : "deliveries")"
        let reason =
            "worker \(consumer) stopped responding: no acknowledgement within the visibility timeout; "
            + "reclaimed after \(Self.seconds(idle)) idle (\(delivered))"
        switch configuration.retryPolicy.decide(attempt: entry.attempt, now: Date(), kind: entry.kind) {
        case .retry(let at, _):
            _ = try await scheduler.schedule(entry: entry, at: at, lastError: reason, worker: consumer, via: redis)
            Counter(label: "leasehold_supervisor_retries_scheduled_total", dimensions: [("stream", stream)]).increment()
            pass.retried += 1
            logger.notice(
                "reclaimed a stalled entry; retry scheduled",
                metadata: [
                    "entry": "\(id)", "key": "\(entry.key)", "attempt": "\(entry.attempt)", "due": "\(at)",
                    "consumer": "\(consumer)",
                ])
        case .deadLetter(let limit):
            try await deadLetters.deadLetter(
                entry, reason: "\(reason); \(limit)", worker: consumer, postgres: postgres, redis: redis)
            Counter(label: "leasehold_supervisor_dead_letters_total", dimensions: [("stream", stream)]).increment()
            pass.deadLettered += 1
            logger.warning(
                "dead-lettered a stalled entry",
                metadata: ["entry": "\(id)", "key": "\(entry.key)", "reason": "\(limit)", "consumer": "\(consumer)"])
        }
    }

    /// `61.2 s` from milliseconds.
    static func seconds(_ milliseconds: Int64) -> String {
        "\((Double(milliseconds) / 100).rounded() / 10) s"
    }
}
