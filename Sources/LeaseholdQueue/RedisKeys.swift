/// The Redis key layout, under a configurable prefix (default `lh:`).
///
/// Streams per source, one consumer group `workers`, leases, the retry schedule, the supervisor's
/// leader lease and published booking outcomes (README.md, "Redis keys", lists them).
public struct RedisKeys: Sendable, Equatable {
    public var prefix: String

    public init(prefix: String = "lh:") {
        self.prefix = prefix
    }

    /// The consumer group every worker joins.
    public static let consumerGroup = "workers"

    public func stream(_ source: String) -> String { "\(prefix)stream:\(source)" }
    public func lease(_ key: String) -> String { "\(prefix)lease:\(key)" }
    public func result(_ requestID: String) -> String { "\(prefix)result:\(requestID)" }
    /// The SHA-256 of the request first accepted under `requestID`, beside its result.
    public func requestDigest(_ requestID: String) -> String { "\(prefix)digest:\(requestID)" }
    public var retrySchedule: String { "\(prefix)retry" }
    public var leader: String { "\(prefix)leader" }
    /// The supervisor leader's backlog and throughput samples (a capped list, newest first).
    public var samples: String { "\(prefix)samples" }
}
