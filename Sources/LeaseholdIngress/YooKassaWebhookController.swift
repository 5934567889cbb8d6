import Foundation
import HTTPTypes
import Hummingbird
import LeaseholdQueue
import LeaseholdWire
import Metrics

/// `POST /yookassa/webhook`: YooKassa payment and refund notifications.
///
/// YooKassa signs nothing, so the source address is checked first (``SourceAddressPolicy``:
/// an allowlist of CIDRs, `X-Forwarded-For` believed only from trusted proxies) — 403 and
/// nothing read or enqueued otherwise. A well-formed notification for `payment.succeeded`,
/// `payment.waiting_for_capture`, `payment.canceled` or `refund.succeeded` is enqueued on
/// `lh:stream:yookassa` under `yk:<event>:<object.id>` with the body as received, and answered
/// 200. Anything else gets a 4xx with a one-line reason; YooKassa retries non-2xx for 24 hours,
/// so a 503 (Redis down, backlog over the high-water mark) loses nothing.
struct YooKassaWebhookController: Sendable {
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!

    let configuration: IngressConfiguration
    let enqueuer: Enqueuer

    func register(with router: Router<IngressRequestContext>) {
        router.post("yookassa/webhook") { request, context in
            try await handle(request, context: context)
        }
    }

    func handle(_ request: Request, context: IngressRequestContext) async throws -> Response {
        let verdict = configuration.yookassaSources.check(
            peer: context.remoteAddress?.ipAddress, forwardedFor: request.headers[values: Self.forwardedFor])
        if case .denied(let reason) = verdict {
            Counter(label: Enqueuer.refusedLabel, dimensions: [("reason", "source_address")]).increment()
            context.logger.warning("YooKassa notification refused", metadata: ["reason": "\(reason)"])
            throw HTTPError(.forbidden, message: reason)
        }
        let body = try await JSONBody(configuration).read(request)
        let valid = try JSONBody.check(IngressBodies.yookassa, body)
        let entry = StreamEntry(
            // Sharded by the payment, so a payment's events meet on one stream.
            stream: configuration.keys.stream("yookassa", shardKey: valid.paymentID), key: valid.messageKey,
            kind: YooKassaNotification.kind,
            payload: Array(body))
        _ = try await enqueuer.enqueue(entry, logger: context.logger)
        return Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: #"{"status":"accepted"}"#)))
    }
}
