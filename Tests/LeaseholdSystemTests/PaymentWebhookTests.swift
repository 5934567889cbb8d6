import Foundation
import LeaseholdTesting
import Testing

/// YooKassa notifications end to end: ingress processes → Redis → worker processes → PostgreSQL.
extension SystemTests {
    @Suite("Payment webhooks")
    struct PaymentWebhookTests {
        static let fast = [
            "LEASEHOLD_LEASE_TTL_MS": "1000", "LEASEHOLD_VISIBILITY_TIMEOUT_MS": "2000",
            "LEASEHOLD_SUPERVISOR_INTERVAL_MS": "100",
            "LEASEHOLD_RETRY_BASE_MS": "100", "LEASEHOLD_RETRY_MAX_DELAY_MS": "300",
        ]

        /// 20 concurrent copies of one `payment.succeeded` through 2 ingress processes extend the
        /// subscription exactly once; webhook_log has one SUCCESS, the rest IGNORED.
        @Test func theSameSuccessTwentyTimesConcurrentlyExtendsOnce() async throws {
            let stack = try await ProcessStack.start(
                ingress: 2, workers: 3, ingressEnvironment: ProcessStack.loopbackYooKassaSource, supervisors: 1,
                supervisorEnvironment: Self.fast)
            try await stack.createPayment("pay-twenty", user: 501, chat: 501)

            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for copy in 0..<20 {
                    group.addTask {
                        try await stack.yookassaNotification(
                            event: "payment.succeeded", objectID: "pay-twenty", ingress: copy % 2
                        ).status
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: 200, count: 20))
            // Twenty entries were added (XINFO STREAM's entries-added counts them even after the
            // supervisor trimmed the processed ones, which XLEN would race with).
            let info = try await stack.redis.send("XINFO", "STREAM", stack.stream("yookassa")).array ?? []
            let added = info.firstIndex { $0.string == "entries-added" }.flatMap { info[$0 + 1].int }
            #expect(added == 20)

            try await waitUntil {
                let log = try await stack.webhookLog(objectID: "pay-twenty")
                return log.values.reduce(0, +) == 20 && log["RECEIVED"] == nil
            }
            let log = try await stack.webhookLog(objectID: "pay-twenty")
            #expect(log == ["SUCCESS": 1, "IGNORED": 19])
            try await waitUntil { try await stack.pendingCount("yookassa") == 0 }

            let days = try await stack.postgres.query(
                "SELECT round(extract(epoch FROM current_period_end - now()) / 86400)::int8, status FROM subscriptions WHERE user_id = 501"
            ).single().decode(Int64.self, String.self)
            #expect(days.0 == 30, "extended once, not \(days.0 / 30) times")
            #expect(days.1 == "active")
            let payment = try await stack.postgres.query(
                "SELECT status, subscription_id IS NOT NULL FROM payments WHERE provider_payment_id = 'pay-twenty'"
            ).single().decode(String.self, Bool.self)
            #expect(payment == ("succeeded", true))
            let inbox = try await stack.postgres.query("SELECT count(*) FROM inbox").single().decode(Int64.self, at: 0)
            #expect(inbox == 1)
            let replies = try await stack.postgres.query("SELECT count(*) FROM outbox WHERE chat_id = 501")
                .single().decode(Int64.self, at: 0)
            #expect(replies == 1, "one ✅ message, not twenty")
            let exits = await stack.shutdown()
            #expect(exits.values.allSatisfy { $0 == 0 }, "\(exits)")
        }

        /// The source address is the only authentication YooKassa offers: a disallowed address is
        /// refused with 403 and nothing is enqueued; `X-Forwarded-For` counts only from a trusted proxy.
        @Test func onlyAllowedSourcesGetIn() async throws {
            // Ingress 0: the default allowlist (YooKassa's ranges), no trusted proxies. The tests
            // connect from 127.0.0.1, which is not YooKassa.
            let stack = try await ProcessStack.start(ingress: 1, workers: 1)
            // Ingress 1: behind a "reverse proxy" on loopback.
            let proxied = try stack.addIngress(environment: ["LEASEHOLD_TRUSTED_PROXIES": "127.0.0.1/32"])
            try await waitUntil { (try? await stack.request(.GET, "/healthz", ingress: proxied).status) == 200 }
            try await stack.createPayment("pay-src", user: 601, chat: 601)

            let direct = try await stack.yookassaNotification(event: "payment.succeeded", objectID: "pay-src")
            #expect(direct.status == 403)
            #expect(direct.body.contains("127.0.0.1 is not allowed"))
            let forged = try await stack.yookassaNotification(
                event: "payment.succeeded", objectID: "pay-src", forwardedFor: "185.71.76.5")
            #expect(forged.status == 403, "X-Forwarded-For from an untrusted peer proves nothing")
            let proxyItself = try await stack.yookassaNotification(
                event: "payment.succeeded", objectID: "pay-src", ingress: proxied)
            #expect(proxyItself.status == 403)
            let outsider = try await stack.yookassaNotification(
                event: "payment.succeeded", objectID: "pay-src", ingress: proxied, forwardedFor: "203.0.113.9")
            #expect(outsider.status == 403)
            let spoofedLeft = try await stack.yookassaNotification(
                event: "payment.succeeded", objectID: "pay-src", ingress: proxied,
                forwardedFor: "185.71.76.5, 203.0.113.9")
            #expect(spoofedLeft.status == 403, "only the right-most untrusted hop counts")
            #expect(try await stack.streamLength("yookassa") == 0, "nothing enqueued by any refused request")

            let viaProxy = try await stack.yookassaNotification(
                event: "payment.succeeded", objectID: "pay-src", ingress: proxied, forwardedFor: "185.71.76.5")
            #expect(viaProxy.status == 200)
            #expect(try await stack.streamLength("yookassa") == 1)
            try await waitUntil { try await stack.webhookLog(objectID: "pay-src") == ["SUCCESS": 1] }
            let status = try await stack.postgres.query("SELECT status FROM subscriptions WHERE user_id = 601")
                .single().decode(String.self, at: 0)
            #expect(status == "active")
            let exits = await stack.shutdown()
            #expect(exits.values.allSatisfy { $0 == 0 }, "\(exits)")
        }

        /// Malformed notifications from an allowed source: a 4xx with a reason, nothing enqueued.
        @Test func malformedNotificationsAreRefused() async throws {
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 0, ingressEnvironment: ProcessStack.loopbackYooKassaSource)
            let json = [("Content-Type", "application/json")]
            let cases: [(headers: [(String, String)], body: String, status: Int, reason: String)] = [
                (json, "{not json", 400, "malformed JSON"),
                (
                    [("Content-Type", "text/plain")],
                    ProcessStack.yookassaBody(event: "payment.succeeded", objectID: "x"), 415,
                    "Content-Type"
                ),
                (json, #"{"type":"notification","event":"payment.succeeded"}"#, 422, "missing field object"),
                (json, ProcessStack.yookassaBody(event: "payout.succeeded", objectID: "x"), 422, "unsupported event"),
                (
                    json, ProcessStack.yookassaBody(event: "payment.succeeded", objectID: "x", amount: "19.999"), 422,
                    "at most 2 decimals"
                ),
                (json, ProcessStack.yookassaBody(event: "refund.succeeded", objectID: "r"), 422, "payment_id"),
                (json, ProcessStack.yookassaBody(event: "payment.succeeded", objectID: "bad id"), 422, "object.id"),
                (json, String(repeating: " ", count: 70_000), 413, "limit"),
            ]
            for item in cases {
                let result = try await stack.request(.POST, "/yookassa/webhook", headers: item.headers, body: item.body)
                #expect(result.status == item.status, "\(item.body.prefix(80))")
                #expect(result.body.contains(item.reason), "\(result.body)")
            }
            #expect(try await stack.streamLength("yookassa") == 0)
            #expect(try await stack.request(.GET, "/healthz").status == 200, "the process keeps serving")
            await stack.shutdown()
        }

        /// A notification that arrives before the bot recorded the payment is a transient failure:
        /// logged FAILED, retried with backoff by the supervisor, applied once the payment exists.
        @Test func aNotificationBeforeItsPaymentIsRetriedUntilThePaymentExists() async throws {
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 2,
                workerEnvironment: Self.fast.merging(["LEASEHOLD_RETRY_MAX_ATTEMPTS": "100"]) { $1 },
                ingressEnvironment: ProcessStack.loopbackYooKassaSource, supervisors: 1,
                supervisorEnvironment: Self.fast.merging(["LEASEHOLD_RETRY_MAX_ATTEMPTS": "100"]) { $1 })
            #expect(
                try await stack.yookassaNotification(event: "payment.succeeded", objectID: "pay-late").status == 200)
            try await waitUntil { (try await stack.webhookLog(objectID: "pay-late")["FAILED"] ?? 0) >= 2 }
            let error = try await stack.postgres.query(
                "SELECT error FROM webhook_log WHERE object_id = 'pay-late' AND status = 'FAILED' LIMIT 1"
            ).single().decode(String.self, at: 0)
            #expect(error.contains("pay-late: not in the database yet"), "\(error)")

            try await stack.createPayment("pay-late", user: 701, chat: 701)
            try await waitUntil { try await stack.webhookLog(objectID: "pay-late")["SUCCESS"] == 1 }
            try await waitUntil { try await stack.pendingCount("yookassa") == 0 }
            let status = try await stack.postgres.query(
                "SELECT status FROM payments WHERE provider_payment_id = 'pay-late'"
            ).single().decode(String.self, at: 0)
            #expect(status == "succeeded")
            let dead = try await stack.postgres.query("SELECT count(*) FROM dead_letters").single().decode(
                Int64.self, at: 0)
            #expect(dead == 0)
            await stack.shutdown()
        }

        /// ... and one whose payment never appears is dead-lettered after the limit, not retried forever.
        @Test func aNotificationWhosePaymentNeverAppearsIsDeadLettered() async throws {
            let limit = ["LEASEHOLD_RETRY_OVERRIDES": "yookassa.notification=100:200:3"]
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 1, workerEnvironment: Self.fast.merging(limit) { $1 },
                ingressEnvironment: ProcessStack.loopbackYooKassaSource, supervisors: 1,
                supervisorEnvironment: Self.fast.merging(limit) { $1 })
            #expect(
                try await stack.yookassaNotification(event: "payment.succeeded", objectID: "pay-ghost").status == 200)
            try await waitUntil {
                try await stack.postgres.query("SELECT count(*) FROM dead_letters").single().decode(Int64.self, at: 0)
                    == 1
            }
            let (key, reason) = try await stack.postgres.query("SELECT message_key, last_error FROM dead_letters")
                .single().decode(String.self, String.self)
            #expect(key == "yk:payment.succeeded:pay-ghost")
            #expect(reason.contains("not in the database yet"), "\(reason)")
            #expect(try await stack.webhookLog(objectID: "pay-ghost") == ["FAILED": 3])
            try await waitUntil { try await stack.pendingCount("yookassa") == 0 }
            let inbox = try await stack.postgres.query("SELECT count(*) FROM inbox").single().decode(Int64.self, at: 0)
            #expect(inbox == 0)
            await stack.shutdown()
        }
    }
}
