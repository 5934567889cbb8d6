import HTTPTypes
import Hummingbird
import LeaseholdQueue
import LeaseholdReactor
import LeaseholdRedis
import Logging
import Metrics

/// XADDs entries for the controllers and turns every failure into a 503 with `Retry-After`:
/// ingress answers 2xx only once the entry is in Redis, so the sender retries anything else.
///
/// Concurrent requests share Redis round trips: every enqueue script goes out on the one
/// non-blocking connection of a ``RedisClient``, written once per reactor turn with whatever
/// other requests queued meanwhile, and its reply is read with theirs, so under load one round
/// trip carries many XADDs and no thread is woken per request.
struct Enqueuer: Sendable {
    let redis: RedisClient
    let producer: StreamProducer
    let retryAfterSeconds: Int
    /// With `LEASEHOLD_REDIS_MIN_REPLICAS`: every entry is confirmed by replicas before the 2xx.
    let replicas: ReplicaAcknowledgement?
    /// `leasehold_ingress_enqueued_total` per stream, made once: a counter looked up in the
    /// metrics factory costs a lock and a dictionary lookup on every request.
    private let enqueued: [String: Counter]

    init(
        redis: RedisClient, producer: StreamProducer, retryAfterSeconds: Int,
        replicas: ReplicaAcknowledgement? = nil
    ) {
        self.redis = redis
        self.producer = producer
        self.retryAfterSeconds = retryAfterSeconds
        self.replicas = replicas
        self.enqueued = Dictionary(
            uniqueKeysWithValues: producer.keys.streams(RedisKeys.sources).map { stream in
                (stream, Counter(label: Self.enqueuedLabel, dimensions: [("stream", stream)]))
            })
        for reason in Self.refusalReasons {
            _ = Counter(label: Self.refusedLabel, dimensions: [("reason", reason)])
        }
        self.throttled = Dictionary(
            uniqueKeysWithValues: Self.floodSources.map { source in
                (source, Counter(label: Self.throttledLabel, dimensions: [("source", source)]))
            })
    }

    /// `leasehold_ingress_throttled_total` per source, made once (a flood calls it per request).
    private let throttled: [String: Counter]
    static let throttledLabel = "leasehold_ingress_throttled_total"
    /// Every `source` of `leasehold_ingress_throttled_total`, each series there from the start at
    /// 0: `telegram` (per chat), `api` (per client address). Kept apart from the refusals: a
    /// throttled sender is one client sending too much, not ingress or Redis in trouble.
    static let floodSources = ["telegram", "api"]

    /// A sender's flood limit: which source it counts under, and its bucket.
    struct Flood: Sendable {
        var source: String
        var limit: StreamProducer.FloodLimit
    }

    private static let enqueuedLabel = "leasehold_ingress_enqueued_total"
    static let refusedLabel = "leasehold_ingress_refused_total"
    /// Every `reason` of `leasehold_ingress_refused_total`: each series exists from the start at
    /// 0, so `rate()` and `increase()` see the first refusal (a series that appears with its first
    /// increment has no earlier sample to compare with) and alerts can name them.
    static let refusalReasons = [
        "request_id_reused", "high_water_mark", "redis_backlog", "replicas_unconfirmed", "outcome_unknown",
        "redis_unavailable", "source_address",
    ]

    /// Appends `entry` (and `marker`, atomically, and takes a token from `flood`'s bucket) and
    /// returns its stream ID.
    /// - Throws: ``StreamProducer/Throttled`` when `flood`'s bucket is empty (nothing written; the
    ///   caller answers the sender), otherwise an `HTTPError` to answer with.
    func enqueue(
        _ entry: StreamEntry, marker: StreamProducer.Marker? = nil, flood: Flood? = nil, logger: Logger
    ) async throws -> String {
        do {
            let (redis, producer, replicas) = (redis, producer, replicas)
            let id = try await withTaskExecutorPreference(redis.reactor) {
                guard let replicas else {
                    return try await producer.enqueue(entry, marker: marker, flood: flood?.limit, via: redis)
                }
                return try await Self.enqueue(
                    entry, marker: marker, flood: flood?.limit, producer: producer, redis: redis, replicas: replicas)
            }
            (enqueued[entry.stream] ?? Counter(label: Self.enqueuedLabel, dimensions: [("stream", entry.stream)]))
                .increment()
            return id
        } catch let throttle as StreamProducer.Throttled {
            try rethrowThrottled(throttle, flood: flood, logger: logger)
        } catch let error as RedisError where error.code == StreamProducer.throttled {
            try rethrowThrottled(StreamProducer.Throttled(reply: error), flood: flood, logger: logger)
        } catch let error as RedisError where error.code == StreamProducer.reused {
            Counter(label: Self.refusedLabel, dimensions: [("reason", "request_id_reused")]).increment()
            throw HTTPError(
                .conflict,
                message: "request_id_reused: this request_id was first used for a different request; use a new one")
        } catch let error as RedisError where error.code == StreamProducer.overloaded {
            Counter(label: Self.refusedLabel, dimensions: [("reason", "high_water_mark")]).increment()
            logger.warning("stream over its high-water mark; answering 503", metadata: ["stream": "\(entry.stream)"])
            throw unavailable("the queue is over its high-water mark; retry later")
        } catch let error as RedisError where error.code == .backlog {
            // Redis is slow or stalled and this connection's line is full: nothing was sent.
            Counter(label: Self.refusedLabel, dimensions: [("reason", "redis_backlog")]).increment()
            logger.warning("Redis connection backlogged; answering 503", metadata: ["error": "\(error)"])
            throw unavailable("the queue is busy (Redis is slow to answer); retry later")
        } catch let error as ReplicaAcknowledgement.Unconfirmed {
            // On the master, not (known to be) on enough replicas: a master failure now could lose
            // it, so no 2xx. It will most likely be processed; a retry is processed at most once.
            Counter(label: Self.refusedLabel, dimensions: [("reason", "replicas_unconfirmed")])
                .increment()
            logger.warning("entry not confirmed by Redis replicas; answering 503", metadata: ["error": "\(error)"])
            throw unavailable(
                "outcome_unknown: \(error); retry with the same request_id or update_id, it is processed at most once",
                outcome: "unknown")
        } catch let error as RedisError where error.outcomeUnknown {
            // The script was sent and no reply came (Redis died or stalled mid-call): it may have
            // run. Say so, so the client retries with the same key instead of counting it lost;
            // the retry is processed at most once (the inbox).
            Counter(label: Self.refusedLabel, dimensions: [("reason", "outcome_unknown")]).increment()
            logger.error("enqueue outcome unknown; answering 503", metadata: ["error": "\(error)"])
            throw unavailable(
                "outcome_unknown: the request may have been enqueued; retry with the same request_id or update_id, it is processed at most once",
                outcome: "unknown")
        } catch {
            Counter(label: Self.refusedLabel, dimensions: [("reason", "redis_unavailable")]).increment()
            logger.error("could not enqueue; answering 503", metadata: ["error": "\(error)"])
            throw unavailable("the queue is unavailable; retry later")
        }
    }

    /// Counts a throttled request and throws `throttle` on (debug log only: a flood would
    /// otherwise write a line per request; the counter is where an operator sees it).
    private func rethrowThrottled(_ throttle: StreamProducer.Throttled, flood: Flood?, logger: Logger) throws -> Never {
        let source = flood?.source ?? "unknown"
        (throttled[source] ?? Counter(label: Self.throttledLabel, dimensions: [("source", source)])).increment()
        logger.debug(
            "sender over its flood limit; refused",
            metadata: [
                "source": "\(source)", "bucket": "\(flood?.limit.key ?? "")", "retry_after": "\(throttle.retryAfter)",
            ])
        throw throttle
    }

    /// Enqueues and confirms with replicas: the script pipelined with `CLIENT ID` (the connection
    /// the write went over), both on the connection serving the entry's stream, then
    /// ``ReplicaAcknowledgement/confirm(clientID:stream:)``. Until the script is loaded on that
    /// node (its first call, or after a `SCRIPT FLUSH`), or when a cluster redirects it, the two go
    /// separately, the script through the client's own loading and redirects.
    private static func enqueue(
        _ entry: StreamEntry, marker: StreamProducer.Marker?, flood: StreamProducer.FloodLimit?,
        producer: StreamProducer, redis: RedisClient, replicas: ReplicaAcknowledgement
    ) async throws -> String {
        let call = producer.enqueueCall(entry, marker: marker, flood: flood)
        let clientID = RedisCommand(["CLIENT", "ID"])
        if let sha = call.script.sha {
            let replies = try await redis.pipeline(
                [RedisCommand(["EVALSHA", sha, call.keys.count] + call.keys + call.arguments), clientID],
                routedBy: [entry.stream])
            if case .error(let error) = replies.first, Self.notRun.contains(error.code) {
                // The script did not run there: run it below.
            } else if replies.count == 2, let id = replies[1].int {
                let entryID = try StreamProducer.entryID(in: replies[0])
                try await confirm(replicas, clientID: id, stream: entry.stream)
                return entryID
            } else {
                throw RedisError(source: .server, code: .proto, message: "EVALSHA + CLIENT ID returned \(replies)")
            }
        }
        let entryID = try StreamProducer.entryID(
            in: try await redis.evaluate(call.script, keys: call.keys, arguments: call.arguments))
        guard let id = try await redis.pipeline([clientID], routedBy: [entry.stream]).first?.int else {
            throw RedisError(source: .server, code: .proto, message: "CLIENT ID returned no integer")
        }
        try await confirm(replicas, clientID: id, stream: entry.stream)
        return entryID
    }

    /// ``ReplicaAcknowledgement/confirm(clientID:stream:)`` of an entry the script has appended:
    /// whatever fails now (the `WAIT` refused for a backlog, a connection that cannot be opened),
    /// the entry is in the stream, so the answer must say "unknown", never "refused".
    private static func confirm(_ replicas: ReplicaAcknowledgement, clientID: Int64, stream: String) async throws {
        do {
            try await replicas.confirm(clientID: clientID, stream: stream)
        } catch var error as RedisError where !error.outcomeUnknown {
            error.source = .connection
            error.code = .io
            error.message = "the entry was appended, its replication could not be confirmed: \(error.message)"
            throw error
        }
    }

    /// Error replies meaning the pipelined script did not run where it was sent.
    private static let notRun: Set<RedisError.Code> = [.noScript, .moved, .ask, .tryAgain, .clusterDown]

    /// The header that tells a 503's client whether the request might have been accepted:
    /// `unknown` (it may have been enqueued; retry with the same key) or `refused` (it was not).
    static let outcomeHeader = HTTPField.Name("Leasehold-Outcome")!

    func unavailable(_ message: String, outcome: String = "refused") -> HTTPError {
        HTTPError(
            .serviceUnavailable, headers: [.retryAfter: String(retryAfterSeconds), Self.outcomeHeader: outcome],
            message: message)
    }
}
