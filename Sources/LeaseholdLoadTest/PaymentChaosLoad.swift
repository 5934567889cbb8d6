import AsyncHTTPClient
import Foundation
import LeaseholdCore
import LeaseholdDomain
import LeaseholdPostgres
import NIOCore

/// YooKassa notifications for a chaos run (`leasehold demo --chaos`), sent as YooKassa sends them:
/// every payment gets `payment.waiting_for_capture`, `payment.succeeded` and a duplicate
/// `payment.succeeded`, in an order shuffled per payment (so some arrive out of order: a
/// `waiting_for_capture` after the success must be ignored), each retried every 500 ms until
/// ingress answers 200, as YooKassa retries anything else.
///
/// Afterwards ``check()`` proves each payment was applied exactly once: it succeeded, exactly one
/// `payment.succeeded` was applied (webhook_log SUCCESS), and its user's subscription runs 30 days
/// from the payment, not 60.
public struct PaymentChaosLoad: Sendable {
    public let payments: Int
    /// Makes this run's payment IDs (`chaos-<run>-<i>`) and users unique in the database.
    public let run: String
    public let firstUser: Int64
    public let ingressURLs: [String]
    public let postgresURL: String
    public let seed: UInt64

    public init(
        payments: Int, run: String, firstUser: Int64, ingressURLs: [String], postgresURL: String, seed: UInt64
    ) {
        self.payments = payments
        self.run = run
        self.firstUser = firstUser
        self.ingressURLs = ingressURLs
        self.postgresURL = postgresURL
        self.seed = seed
    }

    /// A check after a chaos run (on the payments here; the demo adds its own).
    public struct Check: Sendable {
        public var name: String
        public var passed: Bool
        public var detail: String

        public init(name: String, passed: Bool, detail: String) {
            self.name = name
            self.passed = passed
            self.detail = detail
        }
    }

    /// What sending did.
    public struct Sent: Sendable {
        /// Notifications answered 200 in the end.
        public var delivered = 0
        /// Attempts that got anything else (503, a dropped connection) and were sent again.
        public var retried = 0
        /// Notifications still not answered 200 when giving up.
        public var abandoned = 0
    }

    static let plan = "chaos-month"

    func paymentID(_ index: Int) -> String { "chaos-\(run)-\(index)" }

    /// The plan (100.00 RUB for 30 days) and one pending payment per user, as the bot records them.
    public func prepare() async throws {
        let client = PostgresClient(configuration: PostgresConfiguration(connectionString: postgresURL), size: 1)
        defer { Task { await client.close() } }
        let (payments, firstUser, run) = (self.payments, self.firstUser, self.run)
        try await client.withConnection { connection in
            let ledger = PaymentLedger()
            _ = try await ledger.upsertPlan(
                code: Self.plan, title: "Chaos", price: "100.00", currency: "RUB", days: 30, on: connection)
            for index in 0..<payments {
                _ = try await ledger.createPending(
                    paymentID: "chaos-\(run)-\(index)", userID: firstUser + Int64(index), chatID: nil,
                    planCode: Self.plan, amount: nil, on: connection)
            }
        }
    }

    /// Sends every payment's notifications, the payments spread evenly over `duration`; gives up
    /// on a notification `giveUpAfter` after the end of `duration`.
    public func send(over duration: Duration, giveUpAfter: Duration) async -> Sent {
        var random = SeededGenerator(seed: seed)
        let orders = (0..<payments).map { _ in
            ["payment.waiting_for_capture", "payment.succeeded", "payment.succeeded"].shuffled(using: &random)
        }
        let start = ContinuousClock.now
        let giveUp = start + duration + giveUpAfter
        let spacing = duration / max(1, payments)
        return await withTaskGroup(of: Sent.self) { group in
            for index in 0..<payments {
                group.addTask {
                    try? await Task.sleep(until: start + spacing * index)
                    var sent = Sent()
                    for event in orders[index] {
                        let url = ingressURLs[index % ingressURLs.count] + "/yookassa/webhook"
                        let body = Self.body(event: event, paymentID: paymentID(index))
                        while true {
                            if (try? await Self.post(url, body: body)) == 200 {
                                sent.delivered += 1
                                break
                            }
                            guard ContinuousClock.now < giveUp else {
                                sent.abandoned += 1
                                break
                            }
                            sent.retried += 1
                            try? await Task.sleep(for: .milliseconds(500))
                        }
                    }
                    return sent
                }
            }
            var total = Sent()
            for await sent in group {
                total.delivered += sent.delivered
                total.retried += sent.retried
                total.abandoned += sent.abandoned
            }
            return total
        }
    }

    /// Checks, in PostgreSQL, that every payment was applied exactly once.
    public func check() async throws -> [Check] {
        let client = PostgresClient(configuration: PostgresConfiguration(connectionString: postgresURL), size: 1)
        defer { Task { await client.close() } }
        let pattern = "chaos-\(run)-%"
        func count(_ query: PostgresQuery) async throws -> Int {
            Int(try await client.query(query).single().decode(Int64.self, at: 0))
        }
        let succeeded = try await count(
            "SELECT count(*) FROM payments WHERE provider_payment_id LIKE \(pattern) AND status = 'succeeded'")
        let applied = try await count(
            """
            SELECT count(*) FROM webhook_log
            WHERE object_id LIKE \(pattern) AND event = 'payment.succeeded' AND status = 'SUCCESS'
            """)
        let thirtyDays = try await count(
            """
            SELECT count(*) FROM payments p JOIN subscriptions s ON s.id = p.subscription_id
            WHERE p.provider_payment_id LIKE \(pattern)
              AND s.current_period_end BETWEEN now() + interval '29 days' AND now() + interval '30 days 1 hour'
            """)
        return [
            Check(
                name: "every payment succeeded", passed: succeeded == payments,
                detail: "\(succeeded) of \(payments) payments succeeded"),
            Check(
                name: "each payment.succeeded applied once", passed: applied == payments,
                detail: "\(applied) applied (webhook_log SUCCESS) for \(payments) payments, each notified twice"),
            Check(
                name: "subscription days equal the sum of succeeded payments", passed: thirtyDays == payments,
                detail: "\(thirtyDays) of \(payments) subscriptions run 30 days (one payment each), none 60"),
        ]
    }

    static func body(event: String, paymentID: String) -> String {
        let status = event == "payment.waiting_for_capture" ? "waiting_for_capture" : "succeeded"
        return """
            {"type":"notification","event":"\(event)","object":{"id":"\(paymentID)","status":"\(status)",\
            "amount":{"value":"100.00","currency":"RUB"},"paid":true}}
            """
    }

    static func post(_ url: String, body: String) async throws -> Int {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 64 * 1024)
        return Int(response.status.code)
    }
}
