import Crypto
import Foundation
import Hummingbird
import LeaseholdQueue
import LeaseholdReactor
import LeaseholdRedis
import LeaseholdWire

/// The direct API for other clients and load tests.
///
/// - `POST /v1/bookings` `{request_id, user_id, slot_id}` with `Authorization: Bearer <token>`:
///   enqueued on `lh:stream:bookings` under the key `api:<request_id>`, answered 202. Sending the
///   same request again under its `request_id` is safe: the worker's inbox makes it a no-op. The
///   same `request_id` with a different user or slot is a reused key, not a retry: 409
///   `request_id_reused`, nothing enqueued (or, once the first is forgotten in Redis, the worker
///   refuses it and `GET` answers 409). With flood control on
///   (``IngressConfiguration/apiFlood``), each client address has a token bucket: a request over
///   it gets 429 with `Retry-After` (seconds until the bucket holds a token), nothing enqueued
///   and no marker written.
/// - `GET /v1/bookings/<request_id>`: `pending`, then the outcome the worker published after
///   COMMIT (`booked`, `slot_taken`, `already_booked`, `unknown_slot`, `rejected`); 409 with
///   `request_id_reused` for a reused key; 404 for an unknown request.
struct BookingsController: Sendable {
    let configuration: IngressConfiguration
    let enqueuer: Enqueuer
    let redis: RedisClient
    private let token: SecretMatcher

    init(configuration: IngressConfiguration, enqueuer: Enqueuer, redis: RedisClient) {
        self.configuration = configuration
        self.enqueuer = enqueuer
        self.redis = redis
        self.token = SecretMatcher(secret: configuration.apiToken)
    }

    /// The one field of a published result that decides the status code.
    private struct StoredStatus: Decodable {
        var status: String
    }

    func register(with router: Router<IngressRequestContext>) {
        router.post("v1/bookings") { request, context in
            try await create(request, context: context)
        }
        router.get("v1/bookings/:request_id") { request, context in
            try await status(request, context: context)
        }
    }

    /// `Authorization: Bearer <token>`, given once. The scheme is case-insensitive (RFC 9110
    /// §11.1, formerly RFC 7235), so `bearer` works; the token must match exactly.
    private func authorize(_ request: Request) throws {
        let headers = request.headers[values: .authorization]
        let header = headers.first ?? ""
        let scheme = header.prefix { $0 != " " }
        let credentials = header.dropFirst(scheme.count).drop { $0 == " " }
        guard headers.count == 1, scheme.lowercased() == "bearer", scheme.count < header.count,
            token.matches(credentials)
        else {
            throw HTTPError(
                .unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "missing or wrong bearer token")
        }
    }

    /// Lowercase hex of a digest, without Foundation's formatter (this runs once per request).
    static func hex(_ digest: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(64)
        for byte in digest {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    func create(_ request: Request, context: IngressRequestContext) async throws -> Response {
        try authorize(request)
        let body = try await JSONBody(configuration).decode(IngressBodies.booking, from: request)
        let booking = body.booking
        let entry = StreamEntry(
            // Sharded by the request ID: its result, digest and lease sit beside the entry.
            stream: configuration.keys.bookingStream(requestID: body.requestID), key: "api:\(body.requestID)",
            kind: BookingRequest.kind,
            payload: booking.payload)
        let pending = #"{"request_id":"\#(body.requestID)","status":"pending"}"#
        // The pending marker is written by the same script as the entry (NX: never over a
        // published outcome), so a GET right after the 202 finds the request, and a refused
        // request leaves no marker behind. The request's digest goes beside it: the same
        // request_id with a different body is refused here with 409 while the first is remembered
        // (the result TTL), and by the worker's inbox after that.
        let digest = Self.hex(SHA256.hash(data: Data(booking.canonicalForm.utf8)))
        do {
            _ = try await enqueuer.enqueue(
                entry,
                marker: StreamProducer.Marker(
                    key: configuration.keys.result(body.requestID), value: pending,
                    ttl: .seconds(configuration.resultTTLSeconds),
                    digestKey: configuration.keys.requestDigest(body.requestID), digest: digest),
                flood: flood(request, context: context, stream: entry.stream),
                logger: context.logger)
        } catch let throttle as StreamProducer.Throttled {
            throw HTTPError(
                .tooManyRequests, headers: [.retryAfter: String(throttle.retryAfterSeconds)],
                message: "too many requests from this client; retry after \(throttle.retryAfterSeconds) s")
        }
        return Response(
            status: .accepted,
            headers: [.contentType: "application/json", .location: "/v1/bookings/\(body.requestID)"],
            body: .init(byteBuffer: ByteBuffer(string: pending)))
    }

    /// The client's flood limit, `nil` when off. The client is its address as ingress sees it
    /// (behind a trusted proxy, from `X-Forwarded-For`): every caller presents the same bearer
    /// token, so the token names no one. The bucket sits in the entry's stream's slot, and API
    /// bookings are sharded by request ID, so with N shards a client has N buckets.
    private func flood(_ request: Request, context: IngressRequestContext, stream: String) -> Enqueuer.Flood? {
        guard configuration.apiFlood.rate > 0 else { return nil }
        // A trusted proxy's malformed X-Forwarded-For names no client: the proxy's own address
        // stands in, rather than one bucket shared by every such request.
        let peer = context.remoteAddress?.ipAddress
        let client =
            configuration.yookassaSources.client(
                peer: peer, forwardedFor: request.headers[values: YooKassaWebhookController.forwardedFor])
            ?? peer ?? "unknown"
        return configuration.apiFlood.limit(key: configuration.keys.floodBucket("client:\(client)", in: stream))
            .map { Enqueuer.Flood(source: "api", limit: $0) }
    }

    func status(_ request: Request, context: IngressRequestContext) async throws -> Response {
        try authorize(request)
        let requestID = context.parameters.get("request_id") ?? ""
        guard IngressBodies.isValidRequestID(requestID) else {
            throw HTTPError(
                .unprocessableContent, message: "request_id must be 1-128 characters of A-Z a-z 0-9 . _ : -")
        }
        let stored: RedisValue
        do {
            let (redis, key) = (redis, configuration.keys.result(requestID))
            stored = try await withTaskExecutorPreference(redis.reactor) { try await redis.send("GET", key) }
        } catch {
            throw enqueuer.unavailable("the result store is unavailable; retry later")
        }
        guard let bytes = stored.bytes else {
            throw HTTPError(.notFound, message: "unknown request_id \(requestID)")
        }
        // A request_id reused for another request: the worker refused it and changed nothing.
        let reused =
            (try? JSONDecoder().decode(StoredStatus.self, from: Data(bytes)))?.status
            == BookingOutcome.requestIDReused.rawValue
        return Response(
            status: reused ? .conflict : .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
