import Foundation
import HTTPTypes
import Hummingbird
import LeaseholdQueue
import LeaseholdWire
import NIOCore

/// `POST /telegram/webhook`: Telegram `Update`s for the bot.
///
/// The secret token header is checked in constant time (401 otherwise). A callback query whose
/// data is `book:<slot_id>`, `cancel:<interview_id>` or `reschedule:<interview_id>:<slot_id>` is
/// enqueued on `lh:stream:telegram` under the key `tg:<update_id>`, and the response body answers
/// the callback query at once so the button stops spinning. Other updates get 200 and are not
/// enqueued.
///
/// With flood control on (``IngressConfiguration/telegramFlood``), each chat has a token bucket:
/// a callback over it is answered 200 with ``slowDown`` and not enqueued (Telegram would only
/// resend an update answered otherwise, adding to the flood).
struct TelegramWebhookController: Sendable {
    static let secretHeader = HTTPField.Name("X-Telegram-Bot-Api-Secret-Token")!
    /// The reply to a callback over its chat's flood limit.
    static let slowDown = "⏳ Слишком много запросов. Пожалуйста, подождите немного и попробуйте снова."

    let configuration: IngressConfiguration
    let enqueuer: Enqueuer
    private let secret: SecretMatcher

    init(configuration: IngressConfiguration, enqueuer: Enqueuer) {
        self.configuration = configuration
        self.enqueuer = enqueuer
        self.secret = SecretMatcher(secret: configuration.telegramSecret)
    }

    func register(with router: Router<IngressRequestContext>) {
        router.post("telegram/webhook") { request, context in
            try await handle(request, context: context)
        }
    }

    func handle(_ request: Request, context: IngressRequestContext) async throws -> Response {
        // Exactly one secret header: with two, which one counts is ambiguous (a proxy may keep the
        // last, ingress read the first), so neither is trusted.
        let presented = request.headers[values: Self.secretHeader]
        guard presented.count == 1, secret.matches(presented[0]) else {
            throw HTTPError(.unauthorized, message: "missing or wrong X-Telegram-Bot-Api-Secret-Token")
        }
        switch try await JSONBody(configuration).decode(IngressBodies.telegram, from: request) {
        case .ignore:
            return Response(status: .ok)  // not a callback: acknowledged, not ours to process
        case .unknownCommand(let callbackQueryID):
            return try answer(callbackQueryID, "🤔 Неизвестная команда.")
        case .enqueue(let updateID, let callbackQueryID, let booking):
            let entry = StreamEntry(
                // Sharded by the user, so one user's updates stay in order on one stream.
                stream: configuration.keys.stream("telegram", shardKey: String(booking.userID)), key: "tg:\(updateID)",
                kind: BookingRequest.kind,
                payload: booking.payload)
            // Per chat (the user's own chat with the bot, where its buttons are), in the stream's
            // slot: a chat's updates come from its users, so when sharded a group chat has one
            // bucket per shard its users fall in; a private chat, one.
            let flood = configuration.telegramFlood.limit(
                key: configuration.keys.floodBucket("chat:\(booking.chatID ?? booking.userID)", in: entry.stream)
            ).map { Enqueuer.Flood(source: "telegram", limit: $0) }
            do {
                _ = try await enqueuer.enqueue(entry, flood: flood, logger: context.logger)
            } catch is StreamProducer.Throttled {
                return try answer(callbackQueryID, Self.slowDown)
            }
            return try answer(callbackQueryID, BookingOutcome.pending.reply)
        }
    }

    private func answer(_ callbackQueryID: String, _ text: String) throws -> Response {
        let body = try JSONEncoder().encode(AnswerCallbackQuery(callbackQueryID: callbackQueryID, text: text))
        return Response(
            status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
