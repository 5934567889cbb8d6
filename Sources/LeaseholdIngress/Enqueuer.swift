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
/// non-blocking connection of a ``RedisAsyncClient``, written once per reactor turn with whatever
/// other requests queued meanwhile, and its reply is read with theirs, so under load one round
/// trip carries many XADDs and no thread is woken per request.
struct Enqueuer: Sendable {
    let redis: RedisAsyncClient
    let producer: StreamProducer
    let retryAfterSeconds: Int
    /// `leasehold_ingress_enqueued_total` per stream, made once: a counter looked up in the
    /// metrics factory on every request (a lock and a dictionary) showed in the profile.
    private let enqueued: [String: Counter]

    init(redis: RedisAsyncClient, producer: StreamProducer, retryAfterSeconds: Int) {
        self.redis = redis
        self.producer = producer
        self.retryAfterSeconds = retryAfterSeconds
        self.enqueued = Dictionary(
            uniqueKeysWithValues: producer.keys.streams(RedisKeys.sources).map { stream in
                (stream, Counter(label: Self.enqueuedLabel, dimensions: [("stream", stream)]))
            })
    }

    private static let enqueuedLabel = "leasehold_ingress_enqueued_total"

    /// Appends `entry` (and `marker`, atomically) and returns its stream ID.
    func enqueue(_ entry: StreamEntry, marker: StreamProducer.Marker? = nil, logger: Logger) async throws -> String {
        do {
            let (redis, producer) = (redis, producer)
            let id = try await withTaskExecutorPreference(redis.reactor) {
                try await producer.enqueue(entry, marker: marker, via: redis)
            }
            (enqueued[entry.stream] ?? Counter(label: Self.enqueuedLabel, dimensions: [("stream", entry.stream)]))
                .increment()
            return id
        } catch let error as RedisError where error.code == StreamProducer.reused {
            Counter(label: "leasehold_ingress_refused_total", dimensions: [("reason", "request_id_reused")]).increment()
            throw HTTPError(
                .conflict,
                message: "request_id_reused: this request_id was first used for a different request; use a new one")
        } catch let error as RedisError where error.code == StreamProducer.overloaded {
            Counter(label: "leasehold_ingress_refused_total", dimensions: [("reason", "high_water_mark")]).increment()
            logger.warning("stream over its high-water mark; answering 503", metadata: ["stream": "\(entry.stream)"])
            throw unavailable("the queue is over its high-water mark; retry later")
        } catch let error as RedisError where error.outcomeUnknown {
            // The script was sent and no reply came (Redis died or stalled mid-call): it may have
            // run. Say so, so the client retries with the same key instead of counting it lost;
            // the retry is processed at most once (the inbox).
            Counter(label: "leasehold_ingress_refused_total", dimensions: [("reason", "outcome_unknown")]).increment()
            logger.error("enqueue outcome unknown; answering 503", metadata: ["error": "\(error)"])
            throw unavailable(
                "outcome_unknown: the request may have been enqueued; retry with the same request_id or update_id, it is processed at most once",
                outcome: "unknown")
        } catch {
            Counter(label: "leasehold_ingress_refused_total", dimensions: [("reason", "redis_unavailable")]).increment()
            logger.error("could not enqueue; answering 503", metadata: ["error": "\(error)"])
            throw unavailable("the queue is unavailable; retry later")
        }
    }

    /// The header that tells a 503's client whether the request might have been accepted:
    /// `unknown` (it may have been enqueued; retry with the same key) or `refused` (it was not).
    static let outcomeHeader = HTTPField.Name("Leasehold-Outcome")!

    func unavailable(_ message: String, outcome: String = "refused") -> HTTPError {
        HTTPError(
            .serviceUnavailable, headers: [.retryAfter: String(retryAfterSeconds), Self.outcomeHeader: outcome],
            message: message)
    }
}
