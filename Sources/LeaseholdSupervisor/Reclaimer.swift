import Foundation
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import Logging
import Metrics

/// Finds entries whose worker stopped acknowledging them and decides their fate: back on the
/// stream later (the retry schedule) or into the dead letters.
///
/// An entry is stalled when it has been pending longer than the visibility timeout **and** its
/// lease is not held. A slow worker renews its lease by heartbeat, so its entries are left alone
/// however long they take; a dead worker's lease expires (lease TTL < visibility timeout) and its
/// entries are reclaimed. The claim itself is `XCLAIM … min-idle-time`, so an entry a worker
/// touched in the meantime is not taken.
struct Reclaimer: Sendable {
    let configuration: SupervisorConfiguration
    let redis: RedisClient
    let postgres: PostgresClient
    let scheduler: RetryScheduler
    let deadLetters: DeadLetterStore
    let logger: Logger

    /// What one pass did, for logs and tests.
    struct Pass: Sendable, Equatable {
        var retried = 0
        var deadLettered = 0
        var leftToLiveWorkers = 0
        var vanished = 0
    }

    func reclaim(stream: String) async throws -> Pass {
        var pass = Pass()
        let visibility = configuration.visibilityTimeout.redisMilliseconds
        let pending = try await redis.send(
            "XPENDING", stream, RedisKeys.consumerGroup, "IDLE", visibility, "-", "+", configuration.batchSize)
        for item in pending.array ?? [] {
            guard let fields = item.array, fields.count >= 4, let id = fields[0].string else { continue }
            let consumer = fields[1].string ?? "?"
            let deliveries = fields[3].int ?? 0
            try await handle(
                id: id, stream: stream, consumer: consumer, deliveries: deliveries, pass: &pass)
        }
        return pass
    }

    private func handle(id: String, stream: String, consumer: String, deliveries: Int64, pass: inout Pass) async throws {
        let keys = configuration.keys
        let visibility = configuration.visibilityTimeout.redisMilliseconds
        let supervisor = configuration.consumerName
        // Read the entry and its lease, then claim it only if still idle and its lease is free.
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
            let claimed = try await redis.send("XCLAIM", stream, RedisKeys.consumerGroup, supervisor, visibility, id)
            guard claimed.array?.isEmpty == false else { return }
            try await deadLetters.deadLetterUndecodable(error, postgres: postgres, redis: redis)
            pass.deadLettered += 1
            return
        }
        if try await redis.send("EXISTS", keys.lease(entry.key)).int == 1 {
            pass.leftToLiveWorkers += 1
            return
        }
        let claimed = try await redis.send("XCLAIM", stream, RedisKeys.consumerGroup, supervisor, visibility, id)
        guard claimed.array?.isEmpty == false else { return }  // a worker touched it meanwhile

        let reason = "no acknowledgement within the visibility timeout (consumer \(consumer), \(deliveries) deliveries)"
        switch configuration.retryPolicy.decide(attempt: entry.attempt, now: Date(), kind: entry.kind) {
        case .retry(let at, _):
            _ = try await redis.withConnection { [scheduler] connection in
                try scheduler.schedule(entry: entry, at: at, lastError: reason, on: connection)
            }
            Counter(label: "leasehold_supervisor_retries_scheduled_total", dimensions: [("stream", stream)]).increment()
            pass.retried += 1
            logger.notice(
                "reclaimed a stalled entry; retry scheduled",
                metadata: ["entry": "\(id)", "key": "\(entry.key)", "attempt": "\(entry.attempt)", "due": "\(at)"])
        case .deadLetter(let limit):
            try await deadLetters.deadLetter(entry, reason: "\(reason); \(limit)", postgres: postgres, redis: redis)
            Counter(label: "leasehold_supervisor_dead_letters_total", dimensions: [("stream", stream)]).increment()
            pass.deadLettered += 1
            logger.warning(
                "dead-lettered a stalled entry", metadata: ["entry": "\(id)", "key": "\(entry.key)", "reason": "\(limit)"])
        }
    }
}
