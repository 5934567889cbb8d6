import LeaseholdRedis

/// Holds an ingress answer until Redis replicas have the entry (`LEASEHOLD_REDIS_MIN_REPLICAS`).
///
/// Redis replicates asynchronously: a master that dies right after answering an XADD may take the
/// entry with it, and the replica promoted in its place never saw it, although ingress already
/// answered 2xx. `WAIT numreplicas timeout` blocks its connection until that many replicas have
/// acknowledged every write the connection made before it, and answers how many did. Ingress
/// answers 2xx only when at least ``minReplicas`` did within ``timeout``; otherwise 503 with
/// `Leasehold-Outcome: unknown` (the entry is on the master and will most likely be processed; the
/// sender's retry with the same key is processed at most once).
///
/// ## One WAIT for many requests
///
/// A WAIT covers every earlier write of its connection, so requests whose enqueue replies arrived
/// in the same reactor turn share one: the first opens a batch and yields once, the others join
/// it, and then one `CLIENT ID` + `WAIT` pipeline goes out. While it blocks, the enqueues queued
/// behind it wait in Redis, and their WAIT is the next batch: the cost is about one replica round
/// trip per batch, not per request.
///
/// ## The same connection
///
/// WAIT only counts its own connection's writes. If the connection was replaced between an
/// enqueue and the WAIT (Redis restarted, a timeout), a WAIT on the new connection would vouch for
/// nothing. So each enqueue is pipelined with `CLIENT ID`, the WAIT with another, and a request
/// whose IDs differ is answered as unconfirmed.
///
/// On a Redis Cluster the WAIT must reach the master that took the write: both pipelines are
/// routed by the entry's stream (``RedisClient/pipeline(_:routedBy:timeout:)``), and batches
/// are kept per stream slot, so one WAIT per slot and turn.
///
/// Every method runs on the Redis client's reactor, whose one thread is the only one touching the
/// state (the same contract as ``RedisClient``).
final class ReplicaAcknowledgement: @unchecked Sendable {
    let redis: RedisClient
    let minReplicas: Int
    let timeout: Duration

    /// What one WAIT found: the connection it ran on and how many replicas acknowledged.
    struct Result: Sendable {
        var clientID: Int64
        var acknowledged: Int
    }

    /// Why a request could not be confirmed.
    struct Unconfirmed: Error, CustomStringConvertible {
        var acknowledged: Int
        var wanted: Int
        var timeout: Duration
        var connectionReplaced: Bool

        var description: String {
            connectionReplaced
                ? "the Redis connection was replaced between the write and its WAIT"
                : "\(acknowledged) of \(wanted) Redis replicas acknowledged the entry within \(timeout)"
        }
    }

    private final class Batch {
        var waiters: [CheckedContinuation<Result, any Error>] = []
    }

    /// The batch not yet sent, per routing slot (0 for every stream on one node).
    private var open: [Int: Batch] = [:]

    init(redis: RedisClient, minReplicas: Int, timeout: Duration) {
        precondition(minReplicas >= 1 && timeout > .zero, "a replica acknowledgement needs replicas and a timeout")
        self.redis = redis
        self.minReplicas = minReplicas
        self.timeout = timeout
    }

    /// Waits until ``minReplicas`` replicas have every write of the connection `clientID` (the
    /// one serving `stream`) made so far, or throws ``Unconfirmed`` (or the Redis error of the WAIT).
    func confirm(clientID: Int64, stream: String) async throws {
        precondition(redis.reactor.isCurrent, "ReplicaAcknowledgement used off its reactor's thread")
        let slot = redis.isCluster ? RedisClusterSlot.slot(for: stream) : 0
        let result: Result
        if let batch = open[slot] {
            result = try await withCheckedThrowingContinuation { batch.waiters.append($0) }
        } else {
            let batch = Batch()
            open[slot] = batch
            // Let the requests whose replies came in this turn join before the WAIT goes out.
            await Task.yield()
            open[slot] = nil
            do {
                result = try await wait(routedBy: stream)
            } catch {
                for waiter in batch.waiters { waiter.resume(throwing: error) }
                throw error
            }
            for waiter in batch.waiters { waiter.resume(returning: result) }
        }
        guard result.clientID == clientID, result.acknowledged >= minReplicas else {
            throw Unconfirmed(
                acknowledged: result.acknowledged, wanted: minReplicas, timeout: timeout,
                connectionReplaced: result.clientID != clientID)
        }
    }

    private func wait(routedBy stream: String) async throws -> Result {
        let replies = try await redis.pipeline(
            [RedisCommand(["CLIENT", "ID"]), RedisCommand(["WAIT", minReplicas, timeout.redisMilliseconds])],
            routedBy: [stream], timeout: timeout + .seconds(5))
        for reply in replies { if case .error(let error) = reply { throw error } }
        guard replies.count == 2, let clientID = replies[0].int, let acknowledged = replies[1].int else {
            throw RedisError(source: .server, code: .proto, message: "CLIENT ID + WAIT returned \(replies)")
        }
        return Result(clientID: clientID, acknowledged: Int(acknowledged))
    }
}
