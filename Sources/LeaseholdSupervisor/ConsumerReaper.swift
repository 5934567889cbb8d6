import LeaseholdQueue
import LeaseholdRedis
import Logging
import Metrics

/// Removes consumers that are gone from the `workers` group.
///
/// Every worker process joins the group under a name of its own (`<host>-<pid>-<random>`) and
/// every supervisor claims under `supervisor-<pid>`, so each restart leaves one more consumer
/// behind for good. A consumer is removed (`XGROUP DELCONSUMER`) when it has been idle longer than
/// ``SupervisorConfiguration/consumerIdleTimeout`` **and** owns no pending entry.
///
/// `DELCONSUMER` drops the consumer's pending entries with it, which would lose them (nothing
/// would ever reclaim them), so the decision is re-checked inside one Lua script
/// (``deleteScript``): `XINFO CONSUMERS`, then `DELCONSUMER` only if that consumer's `pending` is
/// still 0 and its `idle` still past the threshold. A dead worker's entries are first reclaimed
/// (after the visibility timeout, much shorter than this threshold) and then its consumer goes.
/// A live consumer that is removed anyway (idle that long with nothing pending) loses nothing:
/// Redis creates it again on its next read that returns an entry. (On Redis 7.0 a read that returns
/// nothing does not count as activity, so a worker on a stream that stays quiet past the threshold
/// is removed and re-created that way; a worker's heartbeat `XCLAIM` does count.)
struct ConsumerReaper: Sendable {
    let redis: RedisClient
    let idleTimeout: Duration
    let logger: Logger

    // KEYS: stream. ARGV: group, consumer, minimum idle time (ms).
    // Returns 1 when the consumer was deleted, 0 when it is busy, owns pending entries or is gone.
    static let deleteScript = RedisScript(
        """
        local consumers = redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
        for _, info in ipairs(consumers) do
            local f = {}
            for i = 1, #info, 2 do f[info[i]] = info[i + 1] end
            if f['name'] == ARGV[2] then
                if f['pending'] == 0 and f['idle'] >= tonumber(ARGV[3]) then
                    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
                    return 1
                end
                return 0
            end
        end
        return 0
        """)

    /// Deletes `consumer` from `group` on `stream` if, atomically, it owns no pending entry and has
    /// been idle at least `minIdle`. Returns whether it was deleted.
    static func deleteIfIdleAndEmpty(
        _ consumer: String, stream: String, group: String = RedisKeys.consumerGroup, minIdle: Duration,
        via runner: some RedisCommandRunner
    ) async throws -> Bool {
        try await runner.evaluate(
            deleteScript, keys: [stream], arguments: [group, consumer, minIdle.redisMilliseconds]
        ).int == 1
    }

    /// Removes the consumers of `stream` idle past the threshold with nothing pending; returns
    /// their names.
    func reap(stream: String) async throws -> [String] {
        let minIdle = idleTimeout
        var removed: [String] = []
        for consumer in try await ConsumerInfo.read(stream: stream, via: redis)
        where consumer.pending == 0 && consumer.idle >= minIdle.redisMilliseconds {
            if try await Self.deleteIfIdleAndEmpty(consumer.name, stream: stream, minIdle: minIdle, via: redis) {
                removed.append(consumer.name)
            }
        }
        if !removed.isEmpty {
            Counter(label: "leasehold_supervisor_consumers_removed_total", dimensions: [("stream", stream)])
                .increment(by: removed.count)
            logger.info(
                "removed idle consumers without pending entries from the group",
                metadata: ["stream": "\(stream)", "consumers": "\(removed)"])
        }
        return removed
    }
}
