import Foundation
import LeaseholdDomain
import LeaseholdPostgres
import LeaseholdTesting
import LeaseholdWire
import Testing

/// `leasehold_apply_payment` (Migrations/0008_payment_function.sql) against a real, migrated
/// PostgreSQL: the one-way state machine, the payment's lock (incident 001 in
/// Runbooks/architecture.md: the lock depends on `FOR UPDATE OF p`, and a copy of the function
/// with a bare `FOR UPDATE` is refused), and concurrent copies of one notification.
@Suite("Payment function", .enabled(if: IntegrationEnvironment.isAvailable))
struct PaymentFunctionTests {
    typealias Event = YooKassaNotification.Event

    /// What the function does with an event on a payment in a given status.
    enum Rule: Equatable, CustomStringConvertible {
        /// Applied: the payment moves to this status.
        case apply(String)
        /// Recorded and ignored, with this note.
        case ignore(String)
        /// Not applicable yet: rolled back, retried, with this reason.
        case notYet(String)

        var description: String {
            switch self {
            case .apply(let status): "apply → \(status)"
            case .ignore(let note): "ignore (\(note))"
            case .notYet(let reason): "not yet (\(reason))"
            }
        }
    }

    /// The state machine, every event on every status: the six forward moves apply, nothing else
    /// does; a refund before the success waits for it.
    static let rules: [(Event, String, Rule)] = [
        (.paymentWaitingForCapture, "pending", .apply("waiting_for_capture")),
        (.paymentWaitingForCapture, "waiting_for_capture", .ignore("payment already waiting_for_capture")),
        (
            .paymentWaitingForCapture, "succeeded",
            .ignore("payment.waiting_for_capture after the payment became succeeded: status never goes back")
        ),
        (
            .paymentWaitingForCapture, "canceled",
            .ignore("payment.waiting_for_capture after the payment became canceled: status never goes back")
        ),
        (
            .paymentWaitingForCapture, "refunded",
            .ignore("payment.waiting_for_capture after the payment became refunded: status never goes back")
        ),
        (.paymentSucceeded, "pending", .apply("succeeded")),
        (.paymentSucceeded, "waiting_for_capture", .apply("succeeded")),
        (.paymentSucceeded, "succeeded", .ignore("payment already succeeded")),
        (
            .paymentSucceeded, "canceled",
            .ignore("payment.succeeded after the payment became canceled: status never goes back")
        ),
        (
            .paymentSucceeded, "refunded",
            .ignore("payment.succeeded after the payment became refunded: status never goes back")
        ),
        (.paymentCanceled, "pending", .apply("canceled")),
        (.paymentCanceled, "waiting_for_capture", .apply("canceled")),
        (
            .paymentCanceled, "succeeded",
            .ignore("payment.canceled after the payment became succeeded: status never goes back")
        ),
        (.paymentCanceled, "canceled", .ignore("payment already canceled")),
        (
            .paymentCanceled, "refunded",
            .ignore("payment.canceled after the payment became refunded: status never goes back")
        ),
        (
            .refundSucceeded, "pending",
            .notYet("refund for a payment that is still pending; waiting for payment.succeeded")
        ),
        (
            .refundSucceeded, "waiting_for_capture",
            .notYet("refund for a payment that is still waiting_for_capture; waiting for payment.succeeded")
        ),
        (.refundSucceeded, "succeeded", .apply("refunded")),
        (.refundSucceeded, "canceled", .ignore("refund for a canceled payment")),
        (.refundSucceeded, "refunded", .ignore("payment already fully refunded")),
    ]

    @Test func everyEventOnEveryStatusFollowsTheStateMachine() async throws {
        #expect(Self.rules.count == Event.allCases.count * 5, "every pair is in the table")
        let fixture = try await PaymentFixture.start()
        defer { Task { await fixture.stop() } }
        for (index, (event, status, rule)) in Self.rules.enumerated() {
            let id = "m-\(index)"
            try await fixture.createPayment(id)
            try await fixture.client.execute(
                """
                UPDATE payments SET status = \(status),
                       refunded_amount = CASE WHEN \(status) = 'refunded' THEN amount ELSE 0 END
                WHERE provider_payment_id = \(id)
                """)
            let notification =
                event == .refundSucceeded
                ? PaymentFixture.notification(event, "r-\(index)", paymentID: id)
                : PaymentFixture.notification(event, id)
            let label = "\(event.rawValue) on \(status): \(rule)"
            switch rule {
            case .apply(let target):
                let (result, log) = try await fixture.apply(notification)
                #expect(result == PaymentResult(outcome: .applied), "\(label)")
                #expect(try await fixture.payment(id)?.status == target, "\(label)")
                #expect(try await fixture.logStatus(log).0 == "SUCCESS", "\(label)")
            case .ignore(let note):
                let (result, log) = try await fixture.apply(notification)
                #expect(result == PaymentResult(outcome: .ignored, note: note), "\(label)")
                #expect(try await fixture.payment(id)?.status == status, "\(label): unchanged")
                #expect(try await fixture.logStatus(log) == ("IGNORED", note), "\(label)")
            case .notYet(let reason):
                let log = try await fixture.received(notification)
                await #expect("\(label)") {
                    _ = try await fixture.client.withTransaction { connection in
                        try await PaymentTransaction().run(
                            notification, key: notification.messageKey, logID: log, on: connection)
                    }
                } throws: { error in
                    (error as? PostgresTransactionError)?.bodyError as? PaymentNotYetApplicableError
                        == PaymentNotYetApplicableError(paymentID: id, reason: reason)
                }
                #expect(try await fixture.payment(id)?.status == status, "\(label): unchanged")
                #expect(try await fixture.logStatus(log).0 == "RECEIVED", "\(label): the worker marks it FAILED")
                let inbox = try await fixture.count(
                    "SELECT count(*) FROM inbox WHERE message_key = '\(notification.messageKey)'")
                #expect(inbox == 0, "\(label): rolled back, the retry can still apply")
            }
        }
    }

    /// "Not yet" rolls back everything the function wrote even without a surrounding transaction:
    /// the function raises, so the statement's own transaction rolls back.
    @Test func notYetLeavesNothingBehindInAutocommit() async throws {
        let fixture = try await PaymentFixture.start()
        defer { Task { await fixture.stop() } }
        try await fixture.createPayment("p")
        let cases = [
            (
                PaymentFixture.notification(.paymentSucceeded, "ghost"),
                PaymentNotYetApplicableError(
                    paymentID: "ghost", reason: "not in the database yet (the bot has not recorded it)")
            ),
            (
                PaymentFixture.notification(.refundSucceeded, "r", paymentID: "p"),
                PaymentNotYetApplicableError(
                    paymentID: "p", reason: "refund for a payment that is still pending; waiting for payment.succeeded")
            ),
        ]
        for (notification, expected) in cases {
            let log = try await fixture.received(notification)
            await #expect(throws: expected) {
                _ = try await fixture.client.withConnection { connection in
                    try await PaymentTransaction().run(
                        notification, key: notification.messageKey, logID: log, on: connection)
                }
            }
            #expect(try await fixture.logStatus(log).0 == "RECEIVED")
        }
        #expect(try await fixture.count("SELECT count(*) FROM inbox") == 0)
        #expect(try await fixture.count("SELECT count(*) FROM outbox") == 0)
        #expect(try await fixture.payment("p")?.status == "pending")
    }

    /// The mutation check of incident 001: the function's payment lock, with `OF p` taken out,
    /// is what PostgreSQL refused (SQLSTATE 0A000), because the query outer-joins the nullable
    /// subscription; the real function locks the same payment fine. If the copy stopped failing,
    /// the function's lock would no longer be the incident's shape, and this guard would prove
    /// nothing.
    @Test func theFunctionsLockWithoutOfPIsRefusedAsInTheIncident() async throws {
        let fixture = try await PaymentFixture.start()
        defer { Task { await fixture.stop() } }
        try await fixture.createPayment("real")
        try await fixture.createPayment("bare")
        let migration = try String(
            contentsOf: LeaseholdExecutable.migrationsDirectory.appendingPathComponent("0008_payment_function.sql"),
            encoding: .utf8)
        let lock = "FOR UPDATE OF p;"
        #expect(migration.components(separatedBy: lock).count == 2, "the function locks the payment once, OF p")
        #expect(
            migration.contains("LEFT JOIN subscriptions s ON s.id = p.subscription_id"),
            "the locking query outer-joins the nullable subscription")

        let (real, _) = try await fixture.apply(PaymentFixture.notification(.paymentSucceeded, "real"))
        #expect(real == PaymentResult(outcome: .applied))
        #expect(try await fixture.payment("real")?.status == "succeeded")

        let bare = migration.replacingOccurrences(of: lock, with: "FOR UPDATE;")
            .replacingOccurrences(of: "CREATE FUNCTION", with: "CREATE OR REPLACE FUNCTION")
        _ = try await fixture.client.withConnection { try await $0.simpleQuery(bare) }
        await #expect {
            _ = try await fixture.apply(PaymentFixture.notification(.paymentSucceeded, "bare"))
        } throws: { error in
            let postgres = (error as? PostgresTransactionError)?.postgresError
            return postgres?.sqlState == SQLState.featureNotSupported
                && postgres?.message == PaymentTransactionTests.incidentMessage
        }
        #expect(try await fixture.payment("bare")?.status == "pending", "nothing applied")
        #expect(try await fixture.count("SELECT count(*) FROM inbox WHERE message_key LIKE '%:bare'") == 0)
    }

    static let racers = 6

    /// Runs ``racers`` calls of the function for `payment`, each on a connection of its own in
    /// autocommit (the function is the whole transaction), under message key `key(racer)`.
    ///
    /// The race is made deterministic instead of hoped for: the test holds the payment's row lock
    /// until every call waits on a lock (the payment's, or the inbox key of a call ahead of it),
    /// then lets go.
    static func race(
        _ fixture: PaymentFixture, payment: String, key: @escaping @Sendable (Int) -> String
    ) async throws -> [(PaymentResult, Int64)] {
        let notification = PaymentFixture.notification(.paymentSucceeded, payment)
        var received: [Int64] = []
        for _ in 0..<racers { received.append(try await fixture.received(notification)) }
        let logs = received

        let blocker = fixture.database.client(size: 1)
        defer { Task { await blocker.close() } }
        let (held, holding) = AsyncStream.makeStream(of: Void.self)
        let (release, releasing) = AsyncStream.makeStream(of: Void.self)
        let holder = Task {
            try await blocker.withTransaction { connection in
                _ = try await connection.query(
                    "SELECT 1 FROM payments WHERE provider_payment_id = \(payment) FOR UPDATE")
                holding.yield()
                // This closure runs on the connection's own dispatch queue, not on the cooperative
                // pool, so it may block there; the row lock lasts until the test lets go.
                let done = DispatchSemaphore(value: 0)
                Task {
                    for await _ in release { break }; done.signal()
                }
                done.wait()
            }
        }
        for await _ in held { break }

        let results = try await withThrowingTaskGroup(of: (PaymentResult, Int64).self) { group in
            for (racer, log) in logs.enumerated() {
                group.addTask {
                    let result = try await fixture.client.withConnection { connection in
                        try await PaymentTransaction().run(notification, key: key(racer), logID: log, on: connection)
                    }
                    return (result, log)
                }
            }
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                let waiting = try await fixture.client.query(
                    """
                    SELECT count(*) FROM pg_stat_activity
                    WHERE datname = current_database() AND wait_event_type = 'Lock'
                      AND query LIKE '%leasehold_apply_payment%'
                    """
                ).single().decode(Int64.self, at: 0)
                if waiting == Int64(racers) { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            releasing.yield()
            var results: [(PaymentResult, Int64)] = []
            for try await result in group { results.append(result) }
            return results
        }
        _ = try await holder.value
        return results
    }

    /// N identical `payment.succeeded` at once (one message key, as YooKassa's retries and the
    /// queue's redeliveries send it): one applies, every other is a duplicate that changes nothing;
    /// the subscription is extended once.
    @Test func concurrentIdenticalSuccessesApplyOnce() async throws {
        let fixture = try await PaymentFixture.start()
        defer { Task { await fixture.stop() } }
        try await fixture.createPayment("same")
        let key = PaymentFixture.notification(.paymentSucceeded, "same").messageKey
        let results = try await Self.race(fixture, payment: "same") { _ in key }

        let first = results.filter { !$0.0.duplicate }
        #expect(first.map(\.0) == [PaymentResult(outcome: .applied)], "\(results.map(\.0))")
        #expect(
            results.filter { $0.0.duplicate && $0.0.outcome == .applied }.count == Self.racers - 1,
            "\(results.map(\.0))")
        for (result, log) in results {
            #expect(try await fixture.logStatus(log).0 == (result.duplicate ? "IGNORED" : "SUCCESS"))
        }
        #expect(PaymentFixture.daysFromNow(try #require(try await fixture.subscription()).currentPeriodEnd) == 30)
        #expect(try await fixture.payment("same")?.status == "succeeded")
        #expect(try await fixture.count("SELECT count(*) FROM inbox") == 1)
        #expect(try await fixture.count("SELECT count(*) FROM outbox") == 1, "one reply")
    }

    /// The same race with a message key per call, so the inbox lets every call through and only the
    /// payment's row lock orders them: one applies, every other waits for it, then sees the payment
    /// succeeded and is ignored.
    @Test func concurrentSuccessesPastTheInboxAreOrderedByThePaymentLock() async throws {
        let fixture = try await PaymentFixture.start()
        defer { Task { await fixture.stop() } }
        try await fixture.createPayment("locked")
        let results = try await Self.race(fixture, payment: "locked") { "race:\($0)" }

        let outcomes = results.map(\.0)
        #expect(outcomes.filter { $0 == PaymentResult(outcome: .applied) }.count == 1, "\(outcomes)")
        #expect(
            outcomes.filter { $0 == PaymentResult(outcome: .ignored, note: "payment already succeeded") }.count
                == Self.racers - 1, "\(outcomes)")
        #expect(PaymentFixture.daysFromNow(try #require(try await fixture.subscription()).currentPeriodEnd) == 30)
        #expect(try await fixture.count("SELECT count(*) FROM subscriptions") == 1)
        #expect(try await fixture.count("SELECT count(*) FROM inbox") == Int64(Self.racers))
        #expect(try await fixture.count("SELECT count(*) FROM outbox") == 1, "one reply")
    }
}
