import Foundation
import LeaseholdRedis

/// The Redis side of retries: parks a failed entry in the retry schedule and, once it is due, puts
/// it back on its stream — each step one atomic Lua script, so a crash between two calls loses and
/// duplicates nothing.
///
/// ## Layout: a ZSET of small members, a hash per retry
///
/// The schedule is the ZSET ``RedisKeys/retrySchedule(for:)`` of the entry's stream (`lh:retry` for
/// every stream on one node; `lh:{bookings:3}:retry` per stream in the sharded layout), scored by
/// due time in milliseconds since 1970. Its member is the *retry ID*, `<stream>/<entry id>` of the
/// failed entry (see ``member(for:)``), and everything needed to re-enqueue it lives in a hash
/// beside it, `<schedule>:<retry ID>` (``bodyKey(member:)``): `stream`, `key`, `kind`, `payload`, `attempt`
/// (the *next* attempt number), `enqueued_at`, `errors` (every failed attempt so far, see
/// ``AttemptFailure``), plus `last_error` and `failed_entry` for operators. When the retry is due,
/// `errors` goes back onto the stream with the message, so the next failure appends to it and a
/// dead letter ends up with the whole history.
///
/// Chosen over a self-contained JSON member because:
/// - hash fields are binary-safe, so the payload is stored and re-sent byte for byte with no
///   encoding — Redis's Lua has `cjson` but no base64, and `cjson` is not safe for arbitrary bytes;
/// - the member is derived from the entry, so scheduling the same entry twice cannot create a
///   second member (a JSON member would differ by its error text);
/// - an operator can read a parked retry with `HGETALL`, and ZSET scans stay small.
///
/// ## Idempotency
///
/// ``schedule(entry:at:lastError:worker:failedAt:via:)`` is gated on `XACK` returning 1: only the call that
/// actually acknowledges the pending entry parks it. A second call for the same entry (a retried
/// call whose first reply was lost, a reclaimer racing a worker) finds nothing pending and changes
/// nothing; so does a call for an entry that a worker completed meanwhile.
///
/// ## Keys the scripts touch
///
/// `moveDue` XADDs to the streams named in the hashes and reads hashes named after members, keys
/// it cannot declare in `KEYS` up front. In the sharded layout a schedule, its hashes and its
/// stream share the stream's hash tag, so each script stays in one slot, as a Redis Cluster needs.
public struct RetryScheduler: Sendable {
    public let keys: RedisKeys
    /// The schedules ``moveDue(now:limit:skipping:via:)``, ``backlog(via:)`` and ``oldestDue(via:)`` cover:
    /// those of the streams given at init (one on one node, one per stream when sharded).
    public let schedules: [String]
    /// The consumer group whose pending entry ``schedule(entry:at:lastError:worker:failedAt:via:)`` acknowledges.
    public let group: String

    /// - Parameter streams: the streams whose retries this scheduler moves and counts; every
    ///   stream of every source by default.
    public init(keys: RedisKeys, streams: [String]? = nil, group: String = RedisKeys.consumerGroup) {
        self.keys = keys
        self.schedules = keys.retrySchedules(for: streams ?? keys.streams(RedisKeys.sources))
        self.group = group
    }

    /// What ``schedule(entry:at:lastError:worker:failedAt:via:)`` did.
    public enum ScheduleOutcome: Sendable, Equatable {
        /// The entry was acknowledged and parked until its due time.
        case scheduled
        /// The entry was not pending, and its retry is already parked (a repeated call).
        case alreadyScheduled
        /// The entry was not pending and is not parked: someone acknowledged it (a worker that
        /// completed it, or an earlier schedule whose retry has since gone back to the stream).
        case notPending
    }

    /// The ZSET member for the retry of `entry`: `<stream>/<entry id>`, unique per failed delivery.
    public static func member(for entry: StreamEntry) -> String {
        "\(entry.stream)/\(entry.id)"
    }

    /// The hash holding the body of the retry `member` (`<stream>/<entry id>`): beside the
    /// schedule of the member's stream.
    public func bodyKey(member: String) -> String {
        let stream = member.lastIndex(of: "/").map { String(member[..<$0]) } ?? member
        return "\(keys.retrySchedule(for: stream)):\(member)"
    }

    // KEYS: stream, schedule, body. ARGV: group, entry id, member, due (ms), field/value pairs.
    static let scheduleScript = RedisScript(
        """
        if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
            if redis.call('ZSCORE', KEYS[2], ARGV[3]) then return 2 end
            return 0
        end
        redis.call('HSET', KEYS[3], unpack(ARGV, 5))
        redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
        return 1
        """)

    // KEYS: schedule. ARGV: now (ms), limit, then the paused streams, whose retries stay parked.
    // Per member: XADD first, then drop the body and the member, so an XADD that fails (a key that
    // is not a stream) leaves that member parked; scripts are atomic but not rolled back. The
    // members of paused streams are stepped over (offset), so they cannot hold up the others.
    static let moveScript = RedisScript(
        """
        local paused = {}
        for i = 3, #ARGV do paused[ARGV[i]] = true end
        local limit = tonumber(ARGV[2])
        local moved = 0
        local offset = 0
        while moved < limit do
            local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', offset, limit - moved)
            if #due == 0 then break end
            for _, member in ipairs(due) do
                local body = KEYS[1] .. ':' .. member
                local f = redis.call('HMGET', body, 'stream', 'key', 'kind', 'payload', 'attempt', 'enqueued_at',
                    'errors')
                if f[1] and paused[f[1]] then
                    offset = offset + 1
                else
                    if f[1] and f[2] and f[3] and f[4] and f[5] and f[6] then
                        if f[7] then
                            redis.call('XADD', f[1], '*', 'key', f[2], 'kind', f[3], 'payload', f[4],
                                'attempt', f[5], 'enqueued_at', f[6], 'errors', f[7])
                        else
                            redis.call('XADD', f[1], '*', 'key', f[2], 'kind', f[3], 'payload', f[4],
                                'attempt', f[5], 'enqueued_at', f[6])
                        end
                        moved = moved + 1
                    else
                        redis.log(redis.LOG_WARNING, 'leasehold: retry ' .. member .. ' has no complete body; dropped')
                    end
                    redis.call('DEL', body)
                    redis.call('ZREM', KEYS[1], member)
                end
            end
        end
        return moved
        """)

    /// Acknowledges `entry` and parks it until `at` as its next attempt, in one script.
    ///
    /// - Parameters:
    ///   - entry: a pending entry of ``group``, as read (its ``StreamEntry/id`` must be set).
    ///   - at: when it is due; ``moveDue(now:limit:skipping:via:)`` moves it back once `now` reaches it.
    ///   - lastError: why this attempt failed, kept with the retry for operators and dead letters.
    ///   - worker: who made the failed attempt (a worker's consumer name), recorded with the error.
    ///   - failedAt: when the attempt failed.
    @discardableResult
    public func schedule(
        entry: StreamEntry, at: Date, lastError: String, worker: String, failedAt: Date = Date(),
        via runner: some RedisCommandRunner
    ) async throws -> ScheduleOutcome {
        guard !entry.id.isEmpty else {
            throw RedisError(source: .client, code: .invalidInput, message: "cannot schedule an entry without an ID")
        }
        let member = Self.member(for: entry)
        let failures =
            entry.failures + [
                AttemptFailure(at: failedAt, attempt: entry.attempt, worker: worker, error: lastError)
            ]
        let fields: [any RedisArgument] = [
            "stream", entry.stream, "key", entry.key, "kind", entry.kind, "payload", entry.payload,
            "attempt", entry.attempt + 1, "enqueued_at", entry.enqueuedAtMilliseconds,
            "errors", AttemptFailure.encode(failures), "last_error", lastError, "failed_entry", entry.id,
        ]
        let reply = try await runner.evaluate(
            Self.scheduleScript,
            keys: [entry.stream, keys.retrySchedule(for: entry.stream), bodyKey(member: member)],
            arguments: [group, entry.id, member, Self.milliseconds(at)] + fields)
        switch reply.int {
        case 1: return .scheduled
        case 2: return .alreadyScheduled
        case 0: return .notPending
        default:
            throw RedisError(source: .server, code: .proto, message: "retry schedule script returned \(reply)")
        }
    }

    /// Moves up to `limit` retries due at `now` (score ≤ now) back to their streams, one script
    /// per schedule (while the limit lasts): each is XADDed with the fields
    /// ``StreamEntry/fields`` writes (`key`, `kind`, `payload`, `attempt`, `enqueued_at`,
    /// `errors`), then removed from the schedule.
    ///
    /// - Returns: how many entries went back. Call again while it returns `limit`.
    /// The retries of a stream in `paused` stay parked, however due (``StreamPauses``).
    @discardableResult
    public func moveDue(
        now: Date, limit: Int, skipping paused: Set<String> = [], via runner: some RedisCommandRunner
    ) async throws -> Int {
        var moved = 0
        for schedule in schedules where moved < limit {
            moved += try await moveDue(from: schedule, now: now, limit: limit - moved, skipping: paused, via: runner)
        }
        return moved
    }

    /// ``moveDue(now:limit:skipping:via:)`` for one schedule.
    public func moveDue(
        from schedule: String, now: Date, limit: Int, skipping paused: Set<String> = [],
        via runner: some RedisCommandRunner
    ) async throws -> Int {
        guard limit > 0 else { return 0 }
        let reply = try await runner.evaluate(
            Self.moveScript, keys: [schedule],
            arguments: [Self.milliseconds(now), limit] + paused.sorted().map { $0 as any RedisArgument })
        guard let moved = reply.int else {
            throw RedisError(source: .server, code: .proto, message: "retry move script returned \(reply)")
        }
        return Int(moved)
    }

    /// How many retries are parked (`ZCARD` of every schedule), due or not.
    public func backlog(via runner: some RedisCommandRunner) async throws -> Int {
        var total = 0
        for schedule in schedules { total += Int(try await runner.send("ZCARD", schedule).int ?? 0) }
        return total
    }

    /// The due time of the earliest parked retry over every schedule, `nil` when none is parked.
    public func oldestDue(via runner: some RedisCommandRunner) async throws -> Date? {
        var oldest: Date?
        for schedule in schedules {
            let reply = try await runner.send("ZRANGE", schedule, 0, 0, "WITHSCORES")
            guard let pair = reply.array, pair.count == 2, let score = pair[1].string.flatMap(Double.init) else {
                continue
            }
            let due = Date(timeIntervalSince1970: score / 1000)
            oldest = min(oldest ?? due, due)
        }
        return oldest
    }

    /// Milliseconds since 1970, rounded down, as the schedule's scores are.
    static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    }
}
