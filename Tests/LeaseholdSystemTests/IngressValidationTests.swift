import Foundation
import LeaseholdLocalStack
import LeaseholdTesting
import Testing

/// Bad input at the HTTP edge gets its 4xx with a one-line reason and enqueues nothing.
extension SystemTests {
    @Suite("Ingress input validation")
    struct IngressValidationTests {
        struct Case: Sendable, CustomStringConvertible {
            var name: String
            var path: String
            var headers: [(String, String)]
            var body: String?
            var status: Int
            var description: String { name }
        }

        static let json = ("Content-Type", "application/json")
        static let secret = ("X-Telegram-Bot-Api-Secret-Token", ProcessStack.telegramSecret)
        static let bearer = ("Authorization", "Bearer \(ProcessStack.apiToken)")
        static let callback = #"{"update_id":1,"callback_query":{"id":"c","from":{"id":7},"data":"book:1"}}"#
        static let booking = #"{"request_id":"r-1","user_id":1,"slot_id":1}"#

        static let cases: [Case] = [
            Case(
                name: "telegram without secret", path: "/telegram/webhook", headers: [json], body: callback, status: 401
            ),
            Case(
                name: "telegram with a wrong secret", path: "/telegram/webhook",
                headers: [json, ("X-Telegram-Bot-Api-Secret-Token", "nope")], body: callback, status: 401),
            Case(
                name: "telegram as text/plain", path: "/telegram/webhook",
                headers: [secret, ("Content-Type", "text/plain")], body: callback, status: 415),
            Case(
                name: "telegram malformed JSON", path: "/telegram/webhook", headers: [json, secret],
                body: "{\"update_id\":",
                status: 400),
            Case(
                name: "telegram without update_id", path: "/telegram/webhook", headers: [json, secret],
                body: #"{"callback_query":{"id":"c","from":{"id":7},"data":"book:1"}}"#, status: 422),
            Case(
                name: "telegram update_id as a string", path: "/telegram/webhook", headers: [json, secret],
                body: #"{"update_id":"1"}"#, status: 422),
            Case(
                name: "telegram oversize body", path: "/telegram/webhook", headers: [json, secret],
                body: #"{"update_id":1,"pad":""# + String(repeating: "x", count: 70_000) + #""}"#, status: 413),
            Case(name: "bookings without token", path: "/v1/bookings", headers: [json], body: booking, status: 401),
            Case(
                name: "bookings with a wrong token", path: "/v1/bookings",
                headers: [json, ("Authorization", "Bearer wrong")], body: booking, status: 401),
            Case(
                name: "bookings as text/plain", path: "/v1/bookings",
                headers: [bearer, ("Content-Type", "text/plain")],
                body: booking, status: 415),
            Case(
                name: "bookings malformed JSON", path: "/v1/bookings", headers: [json, bearer], body: "not json",
                status: 400),
            Case(
                name: "bookings missing slot_id", path: "/v1/bookings", headers: [json, bearer],
                body: #"{"request_id":"r-2","user_id":1}"#, status: 422),
            Case(
                name: "bookings user_id as a string", path: "/v1/bookings", headers: [json, bearer],
                body: #"{"request_id":"r-3","user_id":"one","slot_id":1}"#, status: 422),
            Case(
                name: "bookings null slot_id", path: "/v1/bookings", headers: [json, bearer],
                body: #"{"request_id":"r-4","user_id":1,"slot_id":null}"#, status: 422),
            Case(
                name: "bookings negative user_id", path: "/v1/bookings", headers: [json, bearer],
                body: #"{"request_id":"r-5","user_id":-1,"slot_id":1}"#, status: 422),
            Case(
                name: "bookings request_id with a space", path: "/v1/bookings", headers: [json, bearer],
                body: #"{"request_id":"r 6","user_id":1,"slot_id":1}"#, status: 422),
            Case(
                name: "bookings request_id too long", path: "/v1/bookings", headers: [json, bearer],
                body: #"{"request_id":"\#(String(repeating: "r", count: 129))","user_id":1,"slot_id":1}"#, status: 422),
            Case(name: "bookings empty body", path: "/v1/bookings", headers: [json, bearer], body: "", status: 400),
        ]

        @Test func everyBadRequestGetsItsStatusAndEnqueuesNothing() async throws {
            let stack = try await ProcessStack.start(ingress: 1, workers: 0)
            for testCase in Self.cases {
                let response = try await stack.request(
                    .POST, testCase.path, headers: testCase.headers, body: testCase.body)
                #expect(response.status == testCase.status, "\(testCase.name): got \(response.status) \(response.body)")
                #expect(!response.body.isEmpty, "\(testCase.name): a reason is given")
                #expect(!response.body.contains("\n") || response.body.hasSuffix("\n"), "one line")
            }
            #expect(try await stack.streamLength("telegram") == 0)
            #expect(try await stack.streamLength("bookings") == 0)

            // Updates that are not ours: 200, not enqueued.
            let message = try await stack.request(
                .POST, "/telegram/webhook", headers: [Self.json, Self.secret],
                body: #"{"update_id":5,"message":{"message_id":1,"chat":{"id":7},"text":"hi"}}"#)
            #expect(message.status == 200)
            let unknown = try await stack.telegramCallback(updateID: 6, userID: 7, data: "hack:1")
            #expect(unknown.status == 200)
            #expect(unknown.json?["method"] as? String == "answerCallbackQuery", "the button still stops spinning")
            #expect(try await stack.streamLength("telegram") == 0)

            // Unknown request IDs are 404; health endpoints answer.
            let missing = try await stack.request(.GET, "/v1/bookings/nobody", headers: [Self.bearer])
            #expect(missing.status == 404)
            #expect(try await stack.request(.GET, "/healthz").status == 200)
            #expect(try await stack.request(.GET, "/readyz").status == 200)

            // And a good one goes through after all the bad ones: the process kept serving.
            let good = try await stack.telegramCallback(updateID: 8, userID: 7, data: "book:1")
            #expect(good.status == 200)
            #expect(good.json?["callback_query_id"] as? String == "cb8")
            #expect(try await stack.streamLength("telegram") == 1)
            let metrics = try await stack.request(.GET, "/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.body.contains("leasehold_ingress_enqueued_total"))
            await stack.shutdown()
        }

        /// Near misses of the right secret and token get 401 on both authenticated routes and enqueue
        /// nothing. The secret followed by extra bytes used to pass: the old comparison folded the
        /// length difference into one byte, so 256 extra bytes made it zero.
        static let nearMisses: [(String, String)] = [
            ("+ 256 bytes", String(repeating: "x", count: 256)),
            ("+ 512 bytes", String(repeating: "a", count: 512)),
            ("+ 1 byte", "x"),
        ]

        @Test func nearMissesOfTheSecretAndTokenAre401() async throws {
            let stack = try await ProcessStack.start(ingress: 1, workers: 0)
            var presented: [(String, String)] = []
            for (name, suffix) in Self.nearMisses {
                presented.append(("secret \(name)", ProcessStack.telegramSecret + suffix))
            }
            presented.append(("a prefix", String(ProcessStack.telegramSecret.dropLast())))
            presented.append(("empty", ""))
            presented.append(("non-ASCII", "test-telegram-secr\u{e9}t"))
            for (name, value) in presented {
                let response = try await stack.request(
                    .POST, "/telegram/webhook", headers: [Self.json, ("X-Telegram-Bot-Api-Secret-Token", value)],
                    body: Self.callback)
                #expect(response.status == 401, "telegram, \(name): got \(response.status)")
            }

            var tokens: [(String, String)] = Self.nearMisses.map { ("token \($0.0)", ProcessStack.apiToken + $0.1) }
            tokens.append(("a prefix", String(ProcessStack.apiToken.dropLast())))
            tokens.append(("empty", ""))
            tokens.append(("non-ASCII", "test-api-t\u{f6}ken"))
            for (name, value) in tokens {
                let response = try await stack.request(
                    .POST, "/v1/bookings", headers: [Self.json, ("Authorization", "Bearer \(value)")],
                    body: Self.booking)
                #expect(response.status == 401, "bookings, \(name): got \(response.status)")
                let lookup = try await stack.request(
                    .GET, "/v1/bookings/r-1", headers: [("Authorization", "Bearer \(value)")])
                #expect(lookup.status == 401, "lookup, \(name): got \(lookup.status)")
            }
            #expect(try await stack.streamLength("telegram") == 0)
            #expect(try await stack.streamLength("bookings") == 0)

            // The exact values still work.
            #expect(try await stack.telegramCallback(updateID: 9, userID: 7, data: "book:1").status == 200)
            #expect(try await stack.book(requestID: "exact-token", userID: 1, slotID: 1).status == 202)
            await stack.shutdown()
        }

        @Test func redisUnreachableAnswers503WithRetryAfter() async throws {
            let stack = try await ProcessStack.start(ingress: 1, workers: 0)
            let dead = "redis://127.0.0.1:\(try freeLoopbackPort())/0"
            let index = try stack.addIngress(environment: ["REDIS_URL": dead])
            #expect(index == 1)
            let url = stack.ingressURL(index)
            var health = 0
            for _ in 0..<200 where health != 200 {
                health = (try? await stack.request(.GET, "/healthz", ingress: 1).status) ?? 0
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(health == 200, "\(url) is up even without Redis")
            #expect(try await stack.request(.GET, "/readyz", ingress: 1).status == 503)
            let refused = try await stack.book(requestID: "no-redis", userID: 1, slotID: 1, ingress: 1)
            #expect(refused.status == 503)
            #expect(refused.header("Retry-After") != nil)
            let telegram = try await stack.telegramCallback(updateID: 1, userID: 1, data: "book:1", ingress: 1)
            #expect(telegram.status == 503, "Telegram retries anything but 2xx")
            await stack.shutdown()
        }

        @Test func overTheHighWaterMarkAnswers503AndEnqueuesNothingMore() async throws {
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 0, ingressEnvironment: ["LEASEHOLD_STREAM_HIGH_WATER_MARK": "3"])
            var statuses: [Int] = []
            for index in 0..<5 {
                statuses.append(try await stack.book(requestID: "hwm-\(index)", userID: 1, slotID: 1).status)
            }
            #expect(statuses == [202, 202, 202, 503, 503])
            #expect(try await stack.streamLength("bookings") == 3)
            let refused = try await stack.request(
                .GET, "/v1/bookings/hwm-4", headers: [("Authorization", "Bearer \(ProcessStack.apiToken)")])
            #expect(refused.status == 404, "a refused request leaves no pending marker")
            await stack.shutdown()
        }
    }
}
