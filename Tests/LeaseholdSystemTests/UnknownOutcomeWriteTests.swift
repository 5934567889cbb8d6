import Foundation
import LeaseholdPostgres
import LeaseholdTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 25: a connection lost around a write the worker cannot know the outcome of.
extension SystemTests {
    @Suite("A write whose outcome is unknown")
    struct UnknownOutcomeWriteTests {
        /// The worker records a notification (webhook_log RECEIVED, committed on its own) and the
        /// connection is lost right after the server committed that INSERT, before the worker
        /// learns so: before any of the answer was forwarded, or after its rows but before the
        /// statement's end. The worker waits that out as an outage and records again; the retry
        /// must find the first row, not write a second one left RECEIVED forever.
        @Test(arguments: [DroppingPostgresProxy.Drop.beforeReply, .afterReply])
        func aConnectionLostAroundTheWebhookLogInsertLeavesOneRow(_ drop: DroppingPostgresProxy.Drop) async throws {
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 0, ingressEnvironment: ProcessStack.loopbackYooKassaSource)
            let upstream = try #require(URLComponents(string: stack.database.url)?.port)
            let proxy = try DroppingPostgresProxy(upstreamPort: upstream, marker: "INSERT INTO webhook_log", drop: drop)
            defer { proxy.stop() }
            let worker = try stack.startWorker(
                name: "worker-0",
                environment: ["POSTGRES_URL": DroppingPostgresProxy.url(stack.database.url, through: proxy)])
            try await waitUntil { worker.output.contains("worker started") }
            try await stack.createPayment("pay-unknown", user: 701, chat: 701)

            #expect(
                try await stack.yookassaNotification(event: "payment.succeeded", objectID: "pay-unknown").status == 200)
            try await waitUntil { try await stack.webhookLog(objectID: "pay-unknown")["SUCCESS"] != nil }
            try await waitUntil { try await stack.pendingCount("yookassa") == 0 }
            #expect(proxy.dropped, "the proxy cut the connection of the INSERT")
            #expect(worker.output.contains("server unreachable"), "the worker waited the loss out and tried again")

            let log = try await stack.webhookLog(objectID: "pay-unknown")
            #expect(log == ["SUCCESS": 1], "one row, finished: \(log)")
            let status = try await stack.postgres.query(
                "SELECT status FROM payments WHERE provider_payment_id = 'pay-unknown'"
            ).single().decode(String.self, at: 0)
            #expect(status == "succeeded")
            await stack.shutdown()
        }
    }
}
