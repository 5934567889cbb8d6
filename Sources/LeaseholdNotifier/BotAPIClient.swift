import AsyncHTTPClient
import Foundation
import LeaseholdCore
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// Calls the Telegram Bot API over AsyncHTTPClient: `POST <base>/bot<token>/<method>` with the
/// outbox row's payload as the JSON body.
///
/// - The token lives only in the request URL built here; every description that leaves this type
///   (``BotAPIOutcome`` descriptions, errors) went through ``BotToken/redact(_:)``, and the HTTP
///   client is given no logger, so it cannot print the URL either. Redirects are refused (a
///   redirect would carry the token elsewhere).
/// - One `HTTPClient` (a connection pool of keep-alive connections to the API host) serves every
///   call; ``shutdown()`` closes it.
/// - Each call is bounded by ``requestTimeout`` (connect + answer). A call that times out after
///   the request was written may still have been delivered by Telegram: it is retried, which is
///   the residual double-send risk the README describes.
public final class BotAPIClient: Sendable {
    /// The Bot API methods the notifier calls. Anything else in `outbox.method` fails the row
    /// without a call: the outbox is not a general-purpose proxy for the bot's token.
    public static let supportedMethods: Set<String> = [
        "sendMessage", "editMessageText", "editMessageReplyMarkup", "answerCallbackQuery", "deleteMessage",
    ]

    public let baseURL: String
    public let requestTimeout: Duration
    private let token: BotToken
    private let http: HTTPClient

    /// - Parameters:
    ///   - baseURL: `https://api.telegram.org`, or a local Bot API server / test fake; no trailing slash needed.
    ///   - maxConnections: keep-alive connections to the API host (about the number of calls in flight).
    public init(baseURL: String, token: BotToken, requestTimeout: Duration, maxConnections: Int) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        self.requestTimeout = requestTimeout
        let timeout = TimeAmount.nanoseconds(requestTimeout.saturatingNanoseconds)
        let configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: timeout, read: timeout),
            connectionPool: .init(
                idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, maxConnections)))
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Calls `method` with `payload` (a JSON object's text) and classifies the answer. Never throws:
    /// a transport failure is a ``BotAPIOutcome/retryable(code:description:)``. Cancellation of
    /// the calling task cancels the request and comes back as a retryable outcome too.
    public func call(method: String, payload: String) async -> BotAPIOutcome {
        await perform(method: method, payload: payload).outcome
    }

    /// `getMe`, for `leasehold notifier --check`: `@username (id N)` when the token works, else
    /// the classified failure.
    public func getMe() async -> (bot: String?, outcome: BotAPIOutcome) {
        let (outcome, body) = await perform(method: "getMe", payload: "{}")
        guard case .delivered = outcome,
            let envelope = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any],
            let result = envelope["result"] as? [String: Any]
        else { return (nil, outcome) }
        let username = result["username"] as? String ?? "?"
        let id = (result["id"] as? NSNumber)?.int64Value.description ?? "?"
        return ("@\(username) (id \(id))", outcome)
    }

    private func perform(method: String, payload: String) async -> (outcome: BotAPIOutcome, body: [UInt8]) {
        var request = HTTPClientRequest(url: "\(baseURL)/bot\(token.value)/\(method)")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "leasehold-notifier")
        request.body = .bytes(ByteBuffer(string: payload))
        do {
            let response = try await http.execute(request, timeout: .nanoseconds(requestTimeout.saturatingNanoseconds))
            let body = Array(buffer: try await response.body.collect(upTo: 1 << 20))
            let outcome = BotAPIOutcome.classify(
                httpStatus: Int(response.status.code), body: body, method: method,
                retryAfterHeader: response.headers.first(name: "Retry-After"))
            return (outcome.redacted(by: token), body)
        } catch {
            return (.networkFailure(token.redact(Self.describe(error))), [])
        }
    }

    /// Closes the connection pool; calls after this fail.
    public func shutdown() async {
        try? await http.shutdown()
    }

    /// A transport error in a line an operator can read (`HTTPClientError.connectTimeout`,
    /// `connection refused (errno: 111)`), without the request.
    static func describe(_ error: any Error) -> String {
        if error is CancellationError { return "request cancelled" }
        if let client = error as? HTTPClientError {
            return "\(client)"
        }
        return String(describing: error)
    }
}

extension BotAPIOutcome {
    /// The same outcome with the token scrubbed from its description (Telegram does not echo the
    /// token, but a proxy's error page might).
    func redacted(by token: BotToken) -> BotAPIOutcome {
        switch self {
        case .delivered: self
        case .rateLimited(let retryAfter, let description):
            .rateLimited(retryAfter: retryAfter, description: token.redact(description))
        case .retryable(let code, let description): .retryable(code: code, description: token.redact(description))
        case .rejected(let code, let description): .rejected(code: code, description: token.redact(description))
        case .botMisconfigured(let code, let description):
            .botMisconfigured(code: code, description: token.redact(description))
        }
    }
}

extension BotAPIClient: Service {
    /// Waits for the service group's graceful shutdown (or the task's cancellation), then closes
    /// the HTTP client's connections. Put it before the notifier in the group: graceful shutdown
    /// goes in reverse order, so the notifier has drained its sends by then.
    public func run() async {
        try? await gracefulShutdown()
        await shutdown()
    }
}
