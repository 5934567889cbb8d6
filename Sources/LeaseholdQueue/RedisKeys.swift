import LeaseholdRedis

/// The Redis key layout, under a configurable prefix (default `lh:`).
///
/// Streams per source, one consumer group `workers`, leases, the retry schedule, the supervisor's
/// leader lease and published booking outcomes (README.md, "Redis keys", lists them).
///
/// ## Two layouts
///
/// - **One node** (``shards`` is `nil`, the default): one stream per source, `lh:stream:bookings`,
///   and per-message keys straight under the prefix: `lh:lease:<message key>`,
///   `lh:result:<request id>`, one retry schedule `lh:retry` for every stream.
/// - **Sharded** (``shards`` = N ≥ 1, required on a Redis Cluster): each source has N streams, and
///   every key a message touches lives under its stream's hash tag, so each script touches one
///   hash slot: `lh:{bookings:3}:stream`, `lh:{bookings:3}:lease:<message key>`,
///   `lh:{bookings:3}:result:<request id>`, `lh:{bookings:3}:digest:<request id>`,
///   `lh:{bookings:3}:retry` (that shard's schedule), `lh:{bookings:3}:retry:<member>` and
///   `lh:{bookings:3}:flood:<sender>` (a sender's flood-control bucket on that shard).
///
/// In both layouts a stream's *scope* (``scope(of:)``) is the prefix its per-message keys share:
/// `lh:` on one node, `lh:{bookings:3}:` when sharded. Code that handles an entry names its keys
/// from the entry's stream, so it is the same for both layouts.
///
/// ## Which shard
///
/// A message goes to shard `CRC16(shard key) mod N` (``shard(for:)``), the shard key being stable
/// across the sender's retries, so a retry meets its first attempt's lease, digest and result:
/// the request ID for API bookings (the digest check that refuses a reused ID, and the result a
/// client polls by ID, must sit in the stream's slot), the user for Telegram updates (one user's
/// updates stay in order on one stream), the payment ID for YooKassa notifications.
///
/// The supervisor's leader lease and samples are single keys, outside any shard.
public struct RedisKeys: Sendable, Equatable {
    public var prefix: String
    /// Streams per source: `nil` for the one-node layout, N ≥ 1 for the sharded one.
    public var shards: Int?

    /// - Parameter shards: `nil` for the one-node layout; otherwise at least 1.
    public init(prefix: String = "lh:", shards: Int? = nil) {
        precondition(shards.map { $0 >= 1 } ?? true, "a sharded layout has at least one shard")
        self.prefix = prefix
        self.shards = shards
    }

    /// The consumer group every worker joins.
    public static let consumerGroup = "workers"

    /// The sources ingress writes to, in the order roles read them by default.
    public static let sources = ["telegram", "yookassa", "bookings"]

    // MARK: Streams

    /// The stream of `source` in shard `shard` (ignored in the one-node layout).
    public func stream(_ source: String, shard: Int = 0) -> String {
        guard let shards else { return "\(prefix)stream:\(source)" }
        precondition((0..<shards).contains(shard), "shard \(shard) of \(shards)")
        return "\(prefix){\(source):\(shard)}:stream"
    }

    /// The stream a message of `source` with this shard key goes to (see "Which shard").
    public func stream(_ source: String, shardKey: String) -> String {
        stream(source, shard: shard(for: shardKey))
    }

    /// Every stream of `source`: one in the one-node layout, ``shards`` when sharded.
    public func streams(_ source: String) -> [String] {
        (0..<(shards ?? 1)).map { stream(source, shard: $0) }
    }

    /// Every stream of every source in `sources`, source by source.
    public func streams(_ sources: [String]) -> [String] {
        sources.flatMap(streams)
    }

    /// The shard of a message with this shard key: `CRC16(key) mod shards`; 0 in the one-node layout.
    public func shard(for shardKey: String) -> Int {
        guard let shards, shards > 1 else { return 0 }
        return Int(RedisClusterSlot.crc16(shardKey.utf8)) % shards
    }

    /// The prefix the per-message keys of `stream`'s entries share: ``prefix`` in the one-node
    /// layout, the stream's name without its trailing `stream` when sharded.
    public func scope(of stream: String) -> String {
        guard shards != nil, stream.hasSuffix("}:stream") else { return prefix }
        return String(stream.dropLast("stream".count))
    }

    // MARK: Per-message keys

    /// The lease of the message `key`, an entry of `stream`.
    public func lease(_ key: String, in stream: String) -> String { "\(scope(of: stream))lease:\(key)" }

    /// The published outcome of the request `requestID`, an entry of `stream`.
    public func result(_ requestID: String, in stream: String) -> String { "\(scope(of: stream))result:\(requestID)" }

    /// The SHA-256 of the request first accepted under `requestID` (an entry of `stream`), beside its result.
    public func requestDigest(_ requestID: String, in stream: String) -> String {
        "\(scope(of: stream))digest:\(requestID)"
    }

    /// The stream an API booking with this request ID goes to: its shard key is the request ID.
    public func bookingStream(requestID: String) -> String { stream("bookings", shardKey: requestID) }

    /// The published outcome of the API booking `requestID` (what `GET /v1/bookings/<id>` reads).
    public func result(_ requestID: String) -> String { result(requestID, in: bookingStream(requestID: requestID)) }

    /// The digest of the API booking `requestID`.
    public func requestDigest(_ requestID: String) -> String {
        requestDigest(requestID, in: bookingStream(requestID: requestID))
    }

    // MARK: Flood control

    /// The token bucket (``StreamProducer/FloodLimit``) of `subject`, a sender of entries to
    /// `stream` (`chat:<id>`, `client:<address>`): `lh:flood:chat:42` on one node,
    /// `lh:{telegram:3}:flood:chat:42` when sharded. It is in the stream's hash slot, so the
    /// enqueue script can take its tokens; a sender whose entries go to several shards has one
    /// bucket per shard.
    public func floodBucket(_ subject: String, in stream: String) -> String { "\(scope(of: stream))flood:\(subject)" }

    // MARK: Retries

    /// The retry schedule of `stream`'s entries: `lh:retry` for every stream in the one-node
    /// layout, one per stream when sharded.
    public func retrySchedule(for stream: String) -> String { "\(scope(of: stream))retry" }

    /// The distinct retry schedules of `streams`, in their order.
    public func retrySchedules(for streams: [String]) -> [String] {
        var seen = Set<String>()
        return streams.map(retrySchedule(for:)).filter { seen.insert($0).inserted }
    }

    // MARK: Pauses

    /// Set while `stream` is paused (``StreamPauses``): workers claim nothing from it, and the
    /// supervisor neither reclaims its entries nor moves retries onto it. In the stream's hash slot
    /// when sharded (`lh:{bookings:3}:paused`, read by the workers' read script beside the
    /// stream); `lh:paused:stream:bookings` on one node.
    public func pause(of stream: String) -> String {
        let scope = scope(of: stream)
        guard scope == prefix else { return "\(scope)paused" }
        return "\(prefix)paused:" + (stream.hasPrefix(prefix) ? String(stream.dropFirst(prefix.count)) : stream)
    }

    // MARK: Singletons

    public var leader: String { "\(prefix)leader" }
    /// The supervisor leader's backlog and throughput samples (a capped list, newest first).
    public var samples: String { "\(prefix)samples" }
}
