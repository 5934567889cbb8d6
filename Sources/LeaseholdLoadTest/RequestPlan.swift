import AsyncHTTPClient
import Foundation
import NIOCore

/// Which request a load test sends as its `i`-th: the slot, the user, the message key, the HTTP
/// request — a pure function of the index, so the sending clients, the verification and pgbench
/// all agree on it.
///
/// Keys are unique per run, and runs never reuse a run number in one database (it is chosen
/// under a table lock, see `LoadTest`):
/// - API: request ID `lt-<run>-<i>`, inbox key `api:lt-<run>-<i>`;
/// - Telegram: `update_id` = run × 10⁷ + i, inbox key `tg:<update_id>`. With run numbers counted
///   in seconds since 2023-11-14 this stays below 2⁵³ (Telegram's integer range, exact in any
///   JSON parser) until 2052.
/// - Mixed: request i takes the API form when i is even, the Telegram form when it is odd.
public struct RequestPlan: Sendable {
    /// Requests per run are limited by the Telegram update ID layout (7 digits for the index).
    public static let indexLimit = 10_000_000
    /// Run numbers count seconds from here, so they stay short.
    static let runEpoch: Int64 = 1_700_000_000

    public let run: Int64
    public let input: LoadTestInput
    /// The run's fresh slots, in creation order.
    public let slotIDs: [Int64]
    /// The run's fresh users.
    public let users: ClosedRange<Int64>
    public let requestsPerSlot: Int
    let apiToken: String
    let telegramSecret: String

    init(
        run: Int64, input: LoadTestInput, slotIDs: [Int64], users: ClosedRange<Int64>, requestsPerSlot: Int,
        apiToken: String, telegramSecret: String
    ) {
        self.run = run
        self.input = input
        self.slotIDs = slotIDs
        self.users = users
        self.requestsPerSlot = requestsPerSlot
        self.apiToken = apiToken
        self.telegramSecret = telegramSecret
    }

    /// Position of request `index`'s slot in ``slotIDs``.
    public func slotPosition(_ index: Int) -> Int { (index / requestsPerSlot) % slotIDs.count }

    public func slot(_ index: Int) -> Int64 { slotIDs[slotPosition(index)] }

    public func user(_ index: Int) -> Int64 { users.lowerBound + Int64(index % users.count) }

    /// Telegram's `update_id` of request `index`.
    public func updateID(_ index: Int) -> Int64 { run * Int64(Self.indexLimit) + Int64(index) }

    /// The inbox key the worker records for request `index`.
    public func messageKey(_ index: Int) -> String {
        input.shape(ofRequest: index) == .api ? "api:lt-\(run)-\(index)" : "tg:\(updateID(index))"
    }

    /// The index of a key of this run, or `nil` for any other key.
    public func index(ofKey key: String) -> Int? {
        let apiPrefix = "api:lt-\(run)-"
        let index: Int
        if key.hasPrefix(apiPrefix) {
            guard let parsed = Int(key.dropFirst(apiPrefix.count)), parsed >= 0 else { return nil }
            index = parsed
        } else if key.hasPrefix("tg:"), let id = Int64(key.dropFirst(3)) {
            let offset = id - run * Int64(Self.indexLimit)
            guard (0..<Int64(Self.indexLimit)).contains(offset) else { return nil }
            index = Int(offset)
        } else {
            return nil
        }
        // A key of the other shape than request `index` has is not one this run sent.
        return messageKey(index) == key ? index : nil
    }

    /// A POSIX regular expression (`message_key ~ …`) matching exactly this run's inbox keys.
    public var keyPattern: String { Self.keyPattern(run: String(run), input: input) }

    /// The same for run `run` (a report's ``LoadTestReport/run``) sent as `input`.
    public static func keyPattern(run: String, input: LoadTestInput) -> String {
        let api = "api:lt-\(run)-[0-9]+"
        // run × 10⁷ + i prints as the run's digits followed by exactly seven.
        let telegram = "tg:\(run)[0-9]{7}"
        switch input {
        case .api: return "^\(api)$"
        case .telegram: return "^\(telegram)$"
        case .mixed: return "^(\(api)|\(telegram))$"
        }
    }

    /// The HTTP request for `index`, sent to `baseURL`.
    func request(_ index: Int, baseURL: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: baseURL + input.path(ofRequest: index))
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        let slot = slot(index)
        let user = user(index)
        if input.shape(ofRequest: index) == .api {
            request.headers.add(name: "Authorization", value: "Bearer \(apiToken)")
            request.body = .bytes(
                ByteBuffer(string: #"{"request_id":"lt-\#(run)-\#(index)","user_id":\#(user),"slot_id":\#(slot)}"#))
        } else {
            request.headers.add(name: "X-Telegram-Bot-Api-Secret-Token", value: telegramSecret)
            request.body = .bytes(ByteBuffer(string: telegramUpdate(index, user: user, slot: slot)))
        }
        return request
    }

    /// The same request as complete HTTP/1.1 bytes for ``LoadHTTPConnection``, addressed to
    /// `host` (the `Host` header: `host:port` of the ingress URL).
    func requestBytes(_ index: Int, host: String) -> [UInt8] {
        let slot = slot(index)
        let user = user(index)
        let body: String
        let credential: String
        if input.shape(ofRequest: index) == .api {
            credential = "Authorization: Bearer \(apiToken)"
            body = #"{"request_id":"lt-\#(run)-\#(index)","user_id":\#(user),"slot_id":\#(slot)}"#
        } else {
            credential = "X-Telegram-Bot-Api-Secret-Token: \(telegramSecret)"
            body = telegramUpdate(index, user: user, slot: slot)
        }
        let head =
            "POST \(input.path(ofRequest: index)) HTTP/1.1\r\nHost: \(host)\r\nContent-Type: application/json\r\n"
            + "\(credential)\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
        var bytes: [UInt8] = []
        bytes.reserveCapacity(head.utf8.count + body.utf8.count)
        bytes.append(contentsOf: head.utf8)
        bytes.append(contentsOf: body.utf8)
        return bytes
    }

    /// A Telegram `Update` as the Bot API delivers it when a user presses the "book" button under
    /// the bot's schedule message (https://core.telegram.org/bots/api#callbackquery).
    func telegramUpdate(_ index: Int, user: Int64, slot: Int64) -> String {
        let update = updateID(index)
        let date = Int(Date().timeIntervalSince1970)
        return """
            {"update_id":\(update),"callback_query":{"id":"\(update)","from":{"id":\(user),"is_bot":false,\
            "first_name":"Load","last_name":"Test \(user)","username":"lt_user_\(user)","language_code":"ru"},\
            "message":{"message_id":\(index + 1),"from":{"id":1,"is_bot":true,"first_name":"Leasehold",\
            "username":"leasehold_bot"},"chat":{"id":\(user),"first_name":"Load","type":"private"},\
            "date":\(date),"text":"Выберите время собеседования"},"chat_instance":"\(user)","data":"book:\(slot)"}}
            """
    }
}
