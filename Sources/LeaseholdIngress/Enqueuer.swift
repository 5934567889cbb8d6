import Hummingbird
import LeaseholdQueue
import LeaseholdRedis
import Logging
import Metrics

/// XADDs entries for the controllers and turns every failure into a 503 with `Retry-After`:
/// ingress answers 2xx only once the entry is in Redis, so the sender retries anything else.
///
/// Concurrent requests share Redis round trips: each enqueue script goes out in a pipeline with
/// whatever other requests are waiting (``RedisBatcher``), so under load one round trip carries
/// many XADDs.
struct Enqueuer: Sendable {
    let batcher: RedisBatcher
    let producer: StreamProducer
    let retryAfterSeconds: Int

    init(redis: RedisClient, producer: StreamProducer, retryAfterSeconds: Int) {
        self.batcher = RedisBatcher(client: redis)
        self.producer = producer
        self.retryAfterSeconds = retryAfterSeconds
    }

    /// Appends `entry` (and `marker`, atomically) and returns its stream ID.
    func enqueue(_ entry: StreamEntry, marker: StreamProducer.Marker? = nil, logger: Logger) async throws -> String {
        do {
            let id = try await producer.enqueue(entry, marker: marker, via: batcher)
            Counter(label: "leasehold_ingress_enqueued_total", dimensions: [("stream", entry.stream)]).increment()
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
        } catch {
            Counter(label: "leasehold_ingress_refused_total", dimensions: [("reason", "redis_unavailable")]).increment()
            logger.error("could not enqueue; answering 503", metadata: ["error": "\(error)"])
            throw unavailable("the queue is unavailable; retry later")
        }
    }

    func unavailable(_ message: String) -> HTTPError {
        HTTPError(.serviceUnavailable, headers: [.retryAfter: String(retryAfterSeconds)], message: message)
    }
}
