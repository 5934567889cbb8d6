import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Sends `POST /v1/bookings` to one `leasehold ingress` started outside a ``ProcessStack`` (whose
/// own ``ProcessStack/book(requestID:userID:slotID:ingress:)`` needs the stack's database), with
/// ``ProcessStack/apiToken``. Call ``shutdown()`` when done.
public final class BookingClient: Sendable {
    public let baseURL: String
    private let http: HTTPClient

    /// `connections`: at most this many requests in flight at once; more wait for a free
    /// connection, and that wait counts against the 5 s connect timeout.
    public init(baseURL: String, connections: Int = 64) {
        self.baseURL = baseURL
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(
            idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(30))
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Runs `body` with a new client and shuts it down afterwards, whether `body` returns or throws
    /// (a client left running traps in its deinit and takes the whole test process with it).
    public static func with<T>(
        baseURL: String, connections: Int = 64, _ body: (BookingClient) async throws -> T
    ) async throws -> T {
        let client = BookingClient(baseURL: baseURL, connections: connections)
        do {
            let value = try await body(client)
            await client.shutdown()
            return value
        } catch {
            await client.shutdown()
            throw error
        }
    }

    /// Books `slotID` for `userID`; returns the HTTP status (202 once the request is in Redis).
    public func book(requestID: String, userID: Int64, slotID: Int64) async throws -> Int {
        try await bookAnswer(requestID: requestID, userID: userID, slotID: slotID).status
    }

    /// ``book(requestID:userID:slotID:)``, with the answer's `Leasehold-Outcome` and `Retry-After`.
    public func bookAnswer(requestID: String, userID: Int64, slotID: Int64) async throws -> (
        status: Int, outcome: String?, retryAfter: String?
    ) {
        var request = HTTPClientRequest(url: baseURL + "/v1/bookings")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(ProcessStack.apiToken)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(
            ByteBuffer(string: #"{"request_id":"\#(requestID)","user_id":\#(userID),"slot_id":\#(slotID)}"#))
        let response = try await http.execute(request, timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 1 << 16)
        return (
            Int(response.status.code), response.headers.first(name: "Leasehold-Outcome"),
            response.headers.first(name: "Retry-After")
        )
    }

    /// `POST <path>` with `headers` and `body`: the status, the response's headers (name, value)
    /// and its body as text.
    public func post(_ path: String, headers: [(String, String)], body: String) async throws -> (
        status: Int, headers: [(String, String)], body: String
    ) {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await http.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 16)
        return (
            Int(response.status.code), response.headers.map { ($0.name, $0.value) }, String(buffer: bytes)
        )
    }

    /// `POST /telegram/webhook` with a callback query `data` from `userID` in the chat `chatID`
    /// (with ``ProcessStack/telegramSecret``): the status and the body (the callback's answer).
    public func telegramCallback(updateID: Int64, userID: Int64, chatID: Int64, data: String) async throws -> (
        status: Int, body: String
    ) {
        let answer = try await post(
            "/telegram/webhook",
            headers: [
                ("X-Telegram-Bot-Api-Secret-Token", ProcessStack.telegramSecret), ("Content-Type", "application/json"),
            ],
            body: """
                {"update_id":\(updateID),"callback_query":{"id":"cb\(updateID)","from":{"id":\(userID)},\
                "message":{"message_id":\(updateID),"chat":{"id":\(chatID)}},"data":"\(data)"}}
                """)
        return (answer.status, answer.body)
    }

    /// Whether `GET /healthz` answers 200.
    public func isHealthy() async -> Bool {
        guard let response = try? await http.execute(HTTPClientRequest(url: baseURL + "/healthz"), timeout: .seconds(5))
        else { return false }
        _ = try? await response.body.collect(upTo: 1 << 16)
        return response.status == .ok
    }

    public func shutdown() async {
        try? await http.shutdown()
    }
}
