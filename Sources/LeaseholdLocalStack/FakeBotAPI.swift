import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers

/// A fake Telegram Bot API on loopback, for notifier tests and `leasehold demo --chaos`: a real
/// HTTP server (Hummingbird) on `127.0.0.1:<free port>` that answers `POST /bot<token>/<method>`
/// like Telegram does, records every call with its arrival time, and answers as scripted — 429
/// with `retry_after`, 500, 403, 400, a hang past the client's timeout — so tests see what the
/// notifier really sends. It lives beside ``LocalStack`` because the demo runs it too: the
/// embedded default's stand-in for `api.telegram.org`.
///
/// ```swift
/// try await FakeBotAPI.withServer { api in
///     api.script(.tooManyRequests(retryAfter: 2), times: 1)
///     api.script(.forbidden("bot was blocked by the user"), for: .chat(42), times: nil)
///     // start notifiers with TELEGRAM_API_BASE_URL=api.url …
/// }
/// ```
public final class FakeBotAPI: Sendable {
    /// One call as received.
    public struct Call: Sendable {
        public var method: String
        /// The token from the path (`bot<token>`).
        public var token: String
        public var chatID: Int64?
        public var text: String?
        /// The request body as sent.
        public var body: String
        public var receivedAt: Date
        /// The HTTP status answered (0 while the answer is still being delayed).
        public var status: Int
        /// The `message_id` answered, for successful message calls.
        public var messageID: Int64?
    }

    /// How to answer a call.
    public enum Reply: Sendable, Equatable {
        /// `{"ok":true,"result":{message}}` (or `true` for methods that return no message).
        case ok
        /// `429` with `parameters.retry_after` seconds.
        case tooManyRequests(retryAfter: Int)
        /// `5xx` with Telegram's envelope.
        case serverError(Int)
        /// `403 Forbidden: <reason>`.
        case forbidden(String)
        /// `400 Bad Request: <reason>`.
        case badRequest(String)
        /// `401 Unauthorized` (a wrong token).
        case unauthorized
        /// No answer for this long, then `ok` (to a client that has usually given up by then).
        case hang(Duration)
        /// A non-Telegram answer: this status and body.
        case raw(status: Int, body: String)
    }

    /// Which calls a scripted reply applies to.
    public enum Match: Sendable, Equatable {
        case any
        case chat(Int64)
        case method(String)
    }

    private struct Rule {
        var match: Match
        var reply: Reply
        /// Answers left; `nil` for every matching call.
        var remaining: Int?
    }

    private struct State {
        var port = 0
        var rules: [Rule] = []
        var calls: [Call] = []
        var nextMessageID: Int64 = 1000
        var delay: Duration = .zero
    }

    private let state = NIOLockedValueBox(State())

    /// The bot token tests give the notifier (well-formed, distinctive, so a leak is easy to grep).
    public static let token = "4242424242:TESTSECRET-leasehold_fake_bot_token"

    private init() {}

    /// `http://127.0.0.1:<port>`: the notifier's `TELEGRAM_API_BASE_URL`.
    public var url: String { "http://127.0.0.1:\(state.withLockedValue { $0.port })" }

    /// Every call so far, in arrival order.
    public var calls: [Call] { state.withLockedValue { $0.calls } }

    /// Answers the next `times` matching calls (every one when `nil`) with `reply`. Rules are tried
    /// in the order they were added; a call no rule matches gets `ok`.
    public func script(_ reply: Reply, for match: Match = .any, times: Int? = 1) {
        state.withLockedValue { $0.rules.append(Rule(match: match, reply: reply, remaining: times)) }
    }

    /// Delays every answer by `delay` (a slow API), on top of any scripted hang.
    public func setDelay(_ delay: Duration) {
        state.withLockedValue { $0.delay = delay }
    }

    /// Waits until at least `count` calls arrived; throws after `timeout`.
    public func waitForCalls(_ count: Int, timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while calls.count < count {
            guard ContinuousClock.now < deadline else {
                throw FakeBotAPIError("the fake Bot API got \(calls.count) calls, expected at least \(count)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Runs a fake Bot API for the duration of `body`, then stops it.
    public static func withServer<T: Sendable>(_ body: (FakeBotAPI) async throws -> T) async throws -> T {
        let api = FakeBotAPI()
        let router = Router()
        router.post(":bot/:method") { request, context -> Response in
            let bot = context.parameters.get("bot") ?? ""
            let method = context.parameters.get("method") ?? ""
            let body = try await request.body.collect(upTo: 1 << 20)
            return await api.answer(bot: bot, method: method, body: String(buffer: body))
        }
        var logger = Logger(label: "fake-bot-api")
        // Stopping is a cancellation, which Hummingbird reports as an error; nothing else is logged.
        logger.logLevel = .critical
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router,
            configuration: ApplicationConfiguration(
                address: .hostname("127.0.0.1", port: 0), serverName: "fake-bot-api"),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            },
            logger: logger)

        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next(), port > 0 else {
                group.cancelAll()
                throw FakeBotAPIError("the fake Bot API did not start")
            }
            api.state.withLockedValue { $0.port = port }
            do {
                let result = try await body(api)
                group.cancelAll()
                return result
            } catch {
                group.cancelAll()
                throw error
            }
        }
    }

    private func answer(bot: String, method: String, body: String) async -> Response {
        let parameters = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
        let chatID = (parameters["chat_id"] as? NSNumber)?.int64Value
        let text = parameters["text"] as? String
        let token = bot.hasPrefix("bot") ? String(bot.dropFirst(3)) : bot
        let receivedAt = Date()

        let (reply, delay, index, messageID) = state.withLockedValue { state -> (Reply, Duration, Int, Int64) in
            var reply = Reply.ok
            for index in state.rules.indices where state.rules[index].remaining.map({ $0 > 0 }) ?? true {
                let rule = state.rules[index]
                let matches: Bool
                switch rule.match {
                case .any: matches = true
                case .chat(let id): matches = chatID == id
                case .method(let name): matches = method == name
                }
                guard matches else { continue }
                reply = rule.reply
                if let remaining = rule.remaining { state.rules[index].remaining = remaining - 1 }
                break
            }
            state.nextMessageID += 1
            let call = Call(
                method: method, token: token, chatID: chatID, text: text, body: body, receivedAt: receivedAt,
                status: 0, messageID: nil)
            state.calls.append(call)
            return (reply, state.delay, state.calls.count - 1, state.nextMessageID)
        }

        if delay > .zero { try? await Task.sleep(for: delay) }
        let (status, json): (Int, String)
        switch reply {
        case .ok, .hang:
            if case .hang(let duration) = reply { try? await Task.sleep(for: duration) }
            if method.hasPrefix("send") || method.hasPrefix("edit") {
                let message: [String: Any] = [
                    "message_id": messageID, "date": Int(receivedAt.timeIntervalSince1970),
                    "chat": ["id": chatID ?? 0, "type": (chatID ?? 0) < 0 ? "group" : "private"],
                    "text": text ?? "",
                ]
                (status, json) = (200, Self.json(["ok": true, "result": message]))
            } else if method == "getMe" {
                (status, json) = (
                    200,
                    Self.json(["ok": true, "result": ["id": 1, "is_bot": true, "username": "leasehold_test_bot"]])
                )
            } else {
                (status, json) = (200, Self.json(["ok": true, "result": true]))
            }
        case .tooManyRequests(let retryAfter):
            (status, json) = (
                429,
                Self.json([
                    "ok": false, "error_code": 429, "description": "Too Many Requests: retry after \(retryAfter)",
                    "parameters": ["retry_after": retryAfter],
                ])
            )
        case .serverError(let code):
            (status, json) = (
                code, Self.json(["ok": false, "error_code": code, "description": "Internal Server Error"])
            )
        case .forbidden(let reason):
            (status, json) = (403, Self.json(["ok": false, "error_code": 403, "description": "Forbidden: \(reason)"]))
        case .badRequest(let reason):
            (status, json) = (
                400, Self.json(["ok": false, "error_code": 400, "description": "Bad Request: \(reason)"])
            )
        case .unauthorized:
            (status, json) = (401, Self.json(["ok": false, "error_code": 401, "description": "Unauthorized"]))
        case .raw(let code, let body):
            (status, json) = (code, body)
        }
        state.withLockedValue { state in
            state.calls[index].status = status
            if status == 200, method.hasPrefix("send") || method.hasPrefix("edit") {
                state.calls[index].messageID = messageID
            }
        }
        return Response(
            status: HTTPResponse.Status(code: status), headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: json)))
    }

    private static func json(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

/// The fake Bot API did not start, or did not get the calls a test waited for.
public struct FakeBotAPIError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
