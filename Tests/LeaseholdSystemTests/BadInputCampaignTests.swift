import Foundation
import LeaseholdCore
import LeaseholdTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The bad-input campaign: malformed and hostile requests on the three `POST` routes against a
/// real `leasehold ingress`. Each gets a 4xx with a one-line reason, enqueues nothing, and leaves
/// the process serving `/healthz`.
///
/// Decisions the table pins down: duplicate JSON keys, `\u0000`, unpaired surrogate escapes,
/// invalid UTF-8, numbers out of range and nesting over 64 are 400 on every route (StrictJSON:
/// a body is enqueued only if every later reader — the worker's decoder, PostgreSQL's `jsonb` —
/// takes it the same way); `application/json` with a charset other than UTF-8 is 415; the
/// `Bearer` scheme is case-insensitive but the token exact; two secret or two `Authorization`
/// headers are 401; `X-Forwarded-For` counts only from a trusted proxy.
extension SystemTests {
    @Suite("Bad-input campaign")
    struct BadInputCampaignTests {
        struct Case: Sendable, CustomStringConvertible {
            var name: String
            var method: String = "POST"
            var path: String
            var headers: [(String, String)]
            var body: [UInt8]
            /// Acceptable statuses (method-not-allowed may be 404 or 405).
            var status: Set<Int>
            var ingress = 0
            var description: String { name }
        }

        static let json = ("Content-Type", "application/json")
        static let secret = ("X-Telegram-Bot-Api-Secret-Token", ProcessStack.telegramSecret)
        static let bearer = ("Authorization", "Bearer \(ProcessStack.apiToken)")

        static func telegram(_ name: String, _ body: String, _ status: Int, headers: [(String, String)]? = nil) -> Case
        {
            Case(
                name: "telegram: \(name)", path: "/telegram/webhook", headers: headers ?? [json, secret],
                body: Array(body.utf8), status: [status])
        }

        static func booking(_ name: String, _ body: String, _ status: Int, headers: [(String, String)]? = nil) -> Case {
            Case(
                name: "bookings: \(name)", path: "/v1/bookings", headers: headers ?? [json, bearer],
                body: Array(body.utf8), status: [status])
        }

        static func yookassa(
            _ name: String, _ body: String, _ status: Int, headers: [(String, String)]? = nil, ingress: Int = 0
        ) -> Case {
            Case(
                name: "yookassa: \(name)", path: "/yookassa/webhook", headers: headers ?? [json],
                body: Array(body.utf8), status: [status], ingress: ingress)
        }

        static let callback = #"{"update_id":1,"callback_query":{"id":"c","from":{"id":7},"data":"book:1"}}"#
        static let paid = ProcessStack.yookassaBody(event: "payment.succeeded", objectID: "pay-1")

        static func paid(replacing old: String, with new: String) -> String {
            paid.replacingOccurrences(of: old, with: new)
        }

        static let cases: [Case] = [
            // Telegram
            telegram("truncated JSON", #"{"update_id":1,"callback_query":{"id":"c""#, 400),
            telegram("update_id as a fraction", #"{"update_id":1.5}"#, 422),
            telegram("update_id beyond Int64", #"{"update_id":9223372036854775808}"#, 422),
            telegram("update_id 1e400", #"{"update_id":1e400}"#, 400),
            telegram(
                "negative update_id",
                #"{"update_id":-1,"callback_query":{"id":"c","from":{"id":7},"data":"book:1"}}"#, 422),
            telegram("callback_query as an array", #"{"update_id":1,"callback_query":[]}"#, 422),
            telegram("from is null", #"{"update_id":1,"callback_query":{"id":"c","from":null,"data":"book:1"}}"#, 422),
            telegram("body is null", "null", 422),
            telegram("body is an array", "[]", 422),
            telegram(
                "\\u0000 in the callback id",
                #"{"update_id":1,"callback_query":{"id":"c\u0000","from":{"id":7},"data":"book:1"}}"#, 400),
            Case(
                name: "telegram: raw NUL after the JSON", path: "/telegram/webhook", headers: [json, secret],
                body: Array(callback.utf8) + [0], status: [400]),
            Case(
                name: "telegram: invalid UTF-8 in a string", path: "/telegram/webhook", headers: [json, secret],
                body: Array(#"{"update_id":1,"callback_query":{"id":""#.utf8) + [0xC3, 0x28, 0xFF]
                    + Array(#"","from":{"id":7},"data":"book:1"}}"#.utf8), status: [400]),
            telegram("unpaired surrogate escape", #"{"update_id":1,"x":"\ud800"}"#, 400),
            telegram("duplicate update_id", #"{"update_id":1,"update_id":2}"#, 400),
            telegram(
                "duplicate callback data",
                #"{"update_id":1,"callback_query":{"id":"c","from":{"id":7},"data":"hack:1","data":"book:1"}}"#, 400),
            telegram("10,000 [", String(repeating: "[", count: 10_000), 400),
            telegram(
                "65 nested objects", String(repeating: #"{"a":"#, count: 65) + "1" + String(repeating: "}", count: 65),
                400),
            telegram(
                "a second secret header", callback, 401,
                headers: [json, secret, ("X-Telegram-Bot-Api-Secret-Token", "wrong")]),
            telegram(
                "charset=latin1", callback, 415,
                headers: [("Content-Type", "application/json; charset=latin1"), secret]),
            telegram("no Content-Type", callback, 415, headers: [secret]),
            Case(
                name: "telegram: GET", method: "GET", path: "/telegram/webhook", headers: [secret], body: [],
                status: [404, 405]),
            // Bookings
            booking("truncated JSON", #"{"request_id":"r-1","user_id":1,"#, 400),
            booking("trailing garbage", #"{"request_id":"r-1","user_id":1,"slot_id":1} x"#, 400),
            booking("user_id as a fraction", #"{"request_id":"r-1","user_id":1.5,"slot_id":1}"#, 422),
            booking("user_id -0", #"{"request_id":"r-1","user_id":-0,"slot_id":1}"#, 422),
            booking("user_id beyond Int64", #"{"request_id":"r-1","user_id":18446744073709551616,"slot_id":1}"#, 422),
            booking("slot_id 1e400", #"{"request_id":"r-1","user_id":1,"slot_id":1e400}"#, 400),
            booking("user_id as an array", #"{"request_id":"r-1","user_id":[1],"slot_id":1}"#, 422),
            booking("empty object", "{}", 422),
            booking("\\u0000 in request_id", #"{"request_id":"r\u0000","user_id":1,"slot_id":1}"#, 400),
            booking("duplicate request_id", #"{"request_id":"r-1","request_id":"r-2","user_id":1,"slot_id":1}"#, 400),
            booking(
                "lowercase scheme, token in the wrong case", #"{"request_id":"r-1","user_id":1,"slot_id":1}"#, 401,
                headers: [json, ("Authorization", "bearer \(ProcessStack.apiToken.uppercased())")]),
            booking(
                "two Authorization headers", #"{"request_id":"r-1","user_id":1,"slot_id":1}"#, 401,
                headers: [json, bearer, ("Authorization", "Bearer other")]),
            booking(
                "Basic scheme", #"{"request_id":"r-1","user_id":1,"slot_id":1}"#, 401,
                headers: [json, ("Authorization", "Basic dGVzdC1hcGktdG9rZW4=")]),
            Case(
                name: "bookings: PUT", method: "PUT", path: "/v1/bookings", headers: [json, bearer],
                body: Array(#"{"request_id":"r-1","user_id":1,"slot_id":1}"#.utf8), status: [404, 405]),
            // YooKassa (ingress 0 allows loopback)
            yookassa("unknown event", paid(replacing: "payment.succeeded", with: "payment.exploded"), 422),
            yookassa("amount 1e3", paid(replacing: "1990.10", with: "1e3"), 422),
            yookassa("amount 12.345", paid(replacing: "1990.10", with: "12.345"), 422),
            yookassa("amount as a number", paid(replacing: #""1990.10""#, with: "1990.10"), 422),
            yookassa("object.id null", paid(replacing: #""id":"pay-1""#, with: #""id":null"#), 422),
            yookassa("no type", paid(replacing: #""type":"notification","#, with: ""), 422),
            yookassa("truncated", String(paid.dropLast(5)), 400),
            yookassa("\\u0000 in metadata", paid(replacing: "leasehold-tests", with: #"a\u0000b"#), 400),
            yookassa(
                "duplicate event",
                paid(
                    replacing: #""event":"payment.succeeded""#,
                    with: #""event":"payment.canceled","event":"payment.succeeded""#),
                400),
            yookassa("1e400 in metadata", paid(replacing: #""leasehold-tests""#, with: "1e400"), 400),
            yookassa(
                "65 levels in metadata",
                paid(
                    replacing: #""leasehold-tests""#,
                    with: String(repeating: "[", count: 65) + String(repeating: "]", count: 65)), 400),
            yookassa("charset=latin1", paid, 415, headers: [("Content-Type", "application/json; charset=latin1")]),
            yookassa(
                "forged X-Forwarded-For from an untrusted peer", paid, 403,
                headers: [json, ("X-Forwarded-For", "185.71.76.5")], ingress: 1),
            yookassa(
                "forged left-most X-Forwarded-For behind a trusted proxy", paid, 403,
                headers: [json, ("X-Forwarded-For", "185.71.76.5, 203.0.113.9")], ingress: 2),
            yookassa(
                "garbage X-Forwarded-For behind a trusted proxy", paid, 403,
                headers: [json, ("X-Forwarded-For", "not-an-ip")], ingress: 2),
            Case(
                name: "yookassa: GET", method: "GET", path: "/yookassa/webhook", headers: [], body: [],
                status: [404, 405]),
        ]

        /// The ingress environment: short timeouts so the slow-loris cases end quickly.
        static let environment = ProcessStack.loopbackYooKassaSource.merging([
            "LEASEHOLD_INGRESS_BODY_TIMEOUT_SECONDS": "2", "LEASEHOLD_INGRESS_IDLE_TIMEOUT_SECONDS": "3",
        ]) { $1 }

        /// Ingress 0 allows loopback to post YooKassa notifications; 1 allows only YooKassa's range
        /// and trusts no proxy; 2 allows YooKassa's range and trusts loopback as a proxy.
        static func start() async throws -> ProcessStack {
            let stack = try await ProcessStack.start(ingress: 1, workers: 0, ingressEnvironment: environment)
            _ = try stack.addIngress(environment: ["LEASEHOLD_YOOKASSA_ALLOWED_CIDRS": "185.71.76.0/27"])
            _ = try stack.addIngress(environment: [
                "LEASEHOLD_YOOKASSA_ALLOWED_CIDRS": "185.71.76.0/27", "LEASEHOLD_TRUSTED_PROXIES": "127.0.0.1/32",
            ])
            for index in 1...2 {
                var health = 0
                for _ in 0..<400 where health != 200 {
                    health = (try? await stack.request(.GET, "/healthz", ingress: index).status) ?? 0
                    if health != 200 { try await Task.sleep(for: .milliseconds(50)) }
                }
                #expect(health == 200, "ingress \(index) is up")
            }
            return stack
        }

        static func streamLengths(_ stack: ProcessStack) async throws -> [Int] {
            [
                try await stack.streamLength("telegram"), try await stack.streamLength("bookings"),
                try await stack.streamLength("yookassa"),
            ]
        }

        @Test func everyHostileRequestIsRefusedAndEnqueuesNothing() async throws {
            #expect(Self.cases.count >= 30)
            let stack = try await Self.start()
            var table: [String] = []
            for testCase in Self.cases {
                let response = try await stack.request(
                    .init(rawValue: testCase.method), testCase.path, ingress: testCase.ingress,
                    headers: testCase.headers, bytes: testCase.body)
                table.append("\(testCase.name) → \(response.status) \(response.body.prefix(100))")
                #expect(
                    testCase.status.contains(response.status),
                    "\(testCase.name): got \(response.status) \(response.body)")
                if response.status != 404 && response.status != 405 {
                    #expect(!response.body.isEmpty, "\(testCase.name): a reason is given")
                }
                #expect(!response.body.dropLast().contains("\n"), "\(testCase.name): one line")
                #expect(try await Self.streamLengths(stack) == [0, 0, 0], "\(testCase.name): nothing enqueued")
                #expect(
                    try await stack.request(.GET, "/healthz", ingress: testCase.ingress).status == 200,
                    "\(testCase.name): ingress survived")
            }
            print(table.joined(separator: "\n"))

            // A callback whose data is no command: 200 with an answer for the button, not enqueued.
            let unknown = try await stack.telegramCallback(updateID: 3, userID: 7, data: "hack:1")
            #expect(unknown.status == 200)
            #expect(unknown.json?["method"] as? String == "answerCallbackQuery")
            #expect(try await Self.streamLengths(stack) == [0, 0, 0])

            // The scheme is case-insensitive (RFC 9110 §11.1): `bearer` with the exact token is let in.
            let lowercase = try await stack.request(
                .POST, "/v1/bookings",
                headers: [Self.json, ("Authorization", "bearer \(ProcessStack.apiToken)")],
                body: #"{"request_id":"lower-1","user_id":1,"slot_id":1}"#)
            #expect(lowercase.status == 202)
            // And JSON declared as UTF-8 is JSON.
            let utf8 = try await stack.request(
                .POST, "/v1/bookings",
                headers: [("Content-Type", "application/json; charset=UTF-8"), Self.bearer],
                body: #"{"request_id":"utf8-1","user_id":1,"slot_id":1}"#)
            #expect(utf8.status == 202)
            #expect(try await Self.streamLengths(stack) == [0, 2, 0])
            for process in stack.ingresses { #expect(process.isRunning, "\(process.name) is running") }
            await stack.shutdown()
        }

        /// Requests that need a raw socket: a 10 MB body (declared and chunked), a body that never
        /// finishes, a head that never finishes, a header over the parser's limit.
        @Test func oversizedAndSlowRequestsAreCutOffEarly() async throws {
            let stack = try await Self.start()
            let port = stack.ingressPorts[0]
            let head =
                "POST /telegram/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + "X-Telegram-Bot-Api-Secret-Token: \(ProcessStack.telegramSecret)\r\n"

            // 10 MB declared: 413 from the headers, before the body, and the connection closed.
            var connection = try RawConnection(port: port)
            #expect(connection.send(head + "Content-Length: 10485760\r\n\r\n" + String(repeating: " ", count: 1000)))
            var answer = connection.read(for: .seconds(5))
            #expect(answer.text.hasPrefix("HTTP/1.1 413"), "declared 10 MB: \(answer.text)")
            #expect(answer.text.contains("limit"))
            #expect(answer.closed, "the connection is closed instead of draining 10 MB")

            // 10 MB chunked: 413 once 64 KB have arrived; the rest is never read.
            connection = try RawConnection(port: port)
            #expect(connection.send(head + "Transfer-Encoding: chunked\r\n\r\n"))
            let chunk = "10000\r\n" + String(repeating: " ", count: 0x10000) + "\r\n"
            var sent = 0
            while sent < 10 << 20, connection.send(chunk) { sent += 0x10000 }
            answer = connection.read(for: .seconds(5))
            #expect(answer.text.hasPrefix("HTTP/1.1 413"), "chunked 10 MB: \(answer.text)")
            #expect(answer.closed)

            // A body that never finishes: one byte every 300 ms after a valid start.
            connection = try RawConnection(port: port)
            let start = ContinuousClock.now
            #expect(connection.send(head + "Content-Length: 500\r\n\r\n" + #"{"update_id":1"#))
            answer = (text: "", closed: false)
            while ContinuousClock.now - start < .seconds(15), !answer.closed {
                _ = connection.send(" ")
                let part = connection.read(for: .milliseconds(300))
                answer = (answer.text + part.text, part.closed)
            }
            let slowBody = ContinuousClock.now - start
            #expect(answer.text.hasPrefix("HTTP/1.1 408"), "slow body: \(answer.text)")
            #expect(answer.closed && slowBody < .seconds(6), "slow body cut off after \(slowBody)")

            // A head that never finishes: closed by the idle timeout (3 s here, 75 s by default).
            connection = try RawConnection(port: port)
            let headStart = ContinuousClock.now
            #expect(connection.send("POST /telegram/webhook HTTP/1.1\r\nHost: x\r\nX-Slow: "))
            var closed = false
            while ContinuousClock.now - headStart < .seconds(15), !closed {
                _ = connection.send("a")
                closed = connection.read(for: .milliseconds(300)).closed
            }
            let slowHead = ContinuousClock.now - headStart
            #expect(closed && slowHead < .seconds(8), "slow head cut off after \(slowHead)")

            // A 100 KB header: the parser's limit (80 KB) answers 400 and closes.
            connection = try RawConnection(port: port)
            _ = connection.send(
                head + "X-Big: \(String(repeating: "a", count: 100_000))\r\nContent-Length: 2\r\n\r\n{}")
            answer = connection.read(for: .seconds(5))
            #expect(answer.text.hasPrefix("HTTP/1.1 400") || answer.text.hasPrefix("HTTP/1.1 431"), "\(answer.text)")

            #expect(try await Self.streamLengths(stack) == [0, 0, 0])
            #expect(try await stack.request(.GET, "/healthz").status == 200)
            #expect(try await stack.telegramCallback(updateID: 9, userID: 7, data: "book:1").status == 200)
            #expect(try await Self.streamLengths(stack) == [1, 0, 0], "and a good request still goes through")
            await stack.shutdown()
        }
    }
}

/// A blocking TCP connection to 127.0.0.1, for requests an HTTP client will not send.
final class RawConnection {
    let descriptor: Int32

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else { throw TestSetupError("connect to port \(port) failed: errno \(errno)") }
    }

    deinit { close(descriptor) }

    /// Sends all of `text`; false once the peer has closed or reset the connection.
    func send(_ text: String) -> Bool {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard written > 0 else { return false }
            bytes = bytes.dropFirst(written)
        }
        return true
    }

    /// What arrives within `duration`, and whether the peer closed the connection.
    func read(for duration: Duration) -> (text: String, closed: Bool) {
        let deadline = ContinuousClock.now + duration
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while ContinuousClock.now < deadline {
            let left = deadline - ContinuousClock.now
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(max(1, left.milliseconds))
            guard poll(&poller, 1, milliseconds) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return (String(decoding: received, as: UTF8.self), true) }
            received += buffer[0..<count]
        }
        return (String(decoding: received, as: UTF8.self), false)
    }
}
