import Foundation
import LeaseholdDomain
import LeaseholdPostgres
import LeaseholdTesting
import Testing

/// The payment transaction against a real, migrated PostgreSQL (incident 001 in Runbooks/architecture.md).
@Suite("Payment transactions", .enabled(if: IntegrationEnvironment.isAvailable))
struct PaymentTransactionTests {
    static let incidentMessage = "FOR UPDATE cannot be applied to the nullable side of an outer join"

    /// The incident's query shape — Django's `select_for_update().select_related("user", "plan",
    /// "subscription")` — must still fail on this PostgreSQL. If it ever stopped failing, the
    /// guard in the payment function (PaymentFunctionTests) would be testing nothing.
    @Test func theIncidentsNaiveLockIsRejectedByPostgres() async throws {
        let fixture = try await PaymentFixture.start()
        defer { Task { await fixture.stop() } }
        try await fixture.createPayment("naive-1")

        let naive: PostgresQuery = """
            SELECT p.*, u.*, pl.*, s.*
            FROM payments p
            INNER JOIN users u ON u.id = p.user_id
            INNER JOIN plans pl ON pl.id = p.plan_id
            LEFT OUTER JOIN subscriptions s ON s.id = p.subscription_id
            WHERE p.provider_payment_id = \("naive-1")
            FOR UPDATE
            """
        await #expect {
            try await fixture.client.withTransaction { try await $0.query(naive) }
        } throws: { error in
            let postgres = (error as? PostgresTransactionError)?.postgresError
            return postgres?.sqlState == SQLState.featureNotSupported && postgres?.message == Self.incidentMessage
        }

        // The payment function's own lock, bare, fails the same way; `FOR UPDATE OF p` does not:
        // PaymentFunctionTests.theFunctionsLockWithoutOfPIsRefusedAsInTheIncident.
    }

    /// The incident's exact case: a payment whose subscription is NULL.
    @Test func paymentSucceededWithANullSubscriptionActivatesOne() async throws {
        let fixture = try await PaymentFixture.start()
        defer { Task { await fixture.stop() } }
        let created = try await fixture.createPayment("pay-1")
        #expect(created.subscriptionID == nil && created.status == "pending")

        let (result, log) = try await fixture.apply(PaymentFixture.notification(.paymentSucceeded, "pay-1"))
        #expect(result == PaymentResult(outcome: .applied))
        let payment = try #require(try await fixture.payment("pay-1"))
        #expect(payment.status == "succeeded")
        let subscription = try #require(try await fixture.subscription())
        #expect(payment.subscriptionID == subscription.id)
        #expect(subscription.status == "active")
        #expect(PaymentFixture.daysFromNow(subscription.currentPeriodEnd) == 30)
        #expect(try await fixture.logStatus(log).0 == "SUCCESS")
        let reply = try await fixture.client.query(
            "SELECT chat_id, payload ->> 'text' FROM outbox WHERE message_key = 'yk:payment.succeeded:pay-1'"
        ).single().decode(Int64.self, String.self)
        #expect(reply.0 == 7007)
        #expect(reply.1.hasPrefix("✅ Оплата получена. Подписка «Месяц» активна до "))
    }

    @Test func aSecondPaymentExtendsFromTheCurrentEndAndAnExpiredOneFromNow() async throws {
        let fixture = try await PaymentFixture.start()
        defer { Task { await fixture.stop() } }
        try await fixture.createPayment("a")
        try await fixture.createPayment("b")
        _ = try await fixture.apply(PaymentFixture.notification(.paymentSucceeded, "a"))
        _ = try await fixture.apply(PaymentFixture.notification(.paymentSucceeded, "b"))
        #expect(PaymentFixture.daysFromNow(try #require(try await fixture.subscription()).currentPeriodEnd) == 60)

        // Lapsed: paying again starts from now, not from the old end.
        _ = try await fixture.client.execute(
            "UPDATE subscriptions SET current_period_end = now() - interval '90 days', status = 'ended'")
        try await fixture.createPayment("c")
        _ = try await fixture.apply(PaymentFixture.notification(.paymentSucceeded, "c"))
        let renewed = try #require(try await fixture.subscription())
        #expect(renewed.status == "active")
        #expect(PaymentFixture.daysFromNow(renewed.currentPeriodEnd) == 30)
    }

    @Test func succeededThenCanceledStaysSucceededAndTheCancelIsLoggedIgnored() async throws {
        let fixture = try await PaymentFixture.start()
        defer { Task { await fixture.stop() } }
        try await fixture.createPayment("p")
        _ = try await fixture.apply(PaymentFixture.notification(.paymentSucceeded, "p"))
        let (result, log) = try await fixture.apply(
            PaymentFixture.notification(.paymentCanceled, "p", reason: "expired_on_confirmation"))
        #expect(result.outcome == .ignored)
        #expect(try await fixture.payment("p")?.status == "succeeded")
        let (status, note) = try await fixture.logStatus(log)
        #expect(status == "IGNORED")
        #expect(note?.contains("never goes back") == true)
        #expect(try #require(try await fixture.subscription()).status == "active")
    }

    @Test func cancelingAPendingPaymentRecordsTheReason() async throws {
        let fixture = try await PaymentFixture.start()
        defer { Task { await fixture.stop() } }
        try await fixture.createPayment("p")
        _ = try await fixture.apply(PaymentFixture.notification(.paymentWaitingForCapture, "p"))
        #expect(try await fixture.payment("p")?.status == "waiting_for_capture")
        _ = try await fixture.apply(PaymentFixture.notification(.paymentCanceled, "p", reason: "insufficient_funds"))
        let payment = try #require(try await fixture.payment("p"))
        #expect(payment.status == "canceled" && payment.cancellationReason == "insufficient_funds")
        #expect(try await fixture.subscription() == nil)
        // A success after the cancel is ignored: canceled is final.
        let (late, _) = try await fixture.apply(PaymentFixture.notification(.paymentSucceeded, "p"))
        #expect(late.outcome == .ignored)
        #expect(try await fixture.subscription() == nil)
    }

    /// README, "Refunds": a refund takes back the refunded share of the days this payment bought.
    @Test func aFullRefundEndsASubscriptionThatPaymentAloneBought() async throws {
        let fixture = try await PaymentFixture.start()
        defer { Task { await fixture.stop() } }
        try await fixture.createPayment("p")
        _ = try await fixture.apply(PaymentFixture.notification(.paymentSucceeded, "p"))
        let (result, log) = try await fixture.apply(
            PaymentFixture.notification(.refundSucceeded, "r-1", amount: "1990.10", paymentID: "p"))
        #expect(result.outcome == .applied)
        let payment = try #require(try await fixture.payment("p"))
        #expect(payment.status == "refunded" && payment.refundedAmount == "1990.10")
        let subscription = try #require(try await fixture.subscription())
        #expect(subscription.status == "ended")
        #expect(abs(subscription.currentPeriodEnd.timeIntervalSinceNow) < 60)
        #expect(try await fixture.logStatus(log).0 == "SUCCESS")
    }

    @Test func aPartialRefundShortensByTheRefundedShareAndAnOverRefundIsRejected() async throws {
        let fixture = try await PaymentFixture.start()
        defer { Task { await fixture.stop() } }
        try await fixture.createPayment("a", amount: "1000.00")
        try await fixture.createPayment("b", amount: "1000.00")
        _ = try await fixture.apply(PaymentFixture.notification(.paymentSucceeded, "a", amount: "1000.00"))
        _ = try await fixture.apply(PaymentFixture.notification(.paymentSucceeded, "b", amount: "1000.00"))
        // 60 days bought; refunding half of b takes back 15 of b's 30 days.
        _ = try await fixture.apply(
            PaymentFixture.notification(.refundSucceeded, "r-1", amount: "500.00", paymentID: "b"))
        let payment = try #require(try await fixture.payment("b"))
        #expect(payment.status == "succeeded" && payment.refundedAmount == "500.00")
        let subscription = try #require(try await fixture.subscription())
        #expect(subscription.status == "active")
        #expect(PaymentFixture.daysFromNow(subscription.currentPeriodEnd) == 45)

        let (over, log) = try await fixture.apply(
            PaymentFixture.notification(.refundSucceeded, "r-2", amount: "500.01", paymentID: "b"))
        #expect(over.outcome == .rejected)
        #expect(try await fixture.logStatus(log).0 == "FAILED")
        #expect(try await fixture.payment("b")?.refundedAmount == "500.00")
        // The rest of the refund completes it.
        _ = try await fixture.apply(
            PaymentFixture.notification(.refundSucceeded, "r-3", amount: "500.00", paymentID: "b"))
        #expect(try await fixture.payment("b")?.status == "refunded")
        #expect(PaymentFixture.daysFromNow(try #require(try await fixture.subscription()).currentPeriodEnd) == 30)
    }

    @Test func amountsRoundTripExactly() async throws {
        let fixture = try await PaymentFixture.start()
        defer { Task { await fixture.stop() } }
        // 1990.10 has no exact binary float; as a Double it prints 1990.0999999999999.
        try await fixture.createPayment("p", amount: "1990.10")
        let stored = try await fixture.client.query(
            "SELECT amount, amount::text, amount = 1990.10 FROM payments WHERE provider_payment_id = 'p'"
        ).single().decode(Decimal.self, String.self, Bool.self)
        #expect(stored.0 == Decimal(string: "1990.10"))
        #expect(stored.1 == "1990.10")
        #expect(stored.2)
        let (result, _) = try await fixture.apply(
            PaymentFixture.notification(.paymentSucceeded, "p", amount: "1990.10"))
        #expect(result.outcome == .applied)

        // A notification one kopeck off does not match: rejected, logged FAILED, nothing changes.
        try await fixture.createPayment("q", amount: "1990.10")
        let (mismatch, log) = try await fixture.apply(
            PaymentFixture.notification(.paymentSucceeded, "q", amount: "1990.09"))
        #expect(mismatch.outcome == .rejected)
        #expect(try await fixture.payment("q")?.status == "pending")
        let (status, note) = try await fixture.logStatus(log)
        #expect(status == "FAILED")
        #expect(note == "amount mismatch: notification says 1990.09 RUB, the payment is 1990.10 RUB")
    }

    @Test func aNotificationForAnUnknownPaymentIsATransientFailureThatChangesNothing() async throws {
        let fixture = try await PaymentFixture.start()
        defer { Task { await fixture.stop() } }
        await #expect {
            _ = try await fixture.apply(PaymentFixture.notification(.paymentSucceeded, "not-yet"))
        } throws: { error in
            ((error as? PostgresTransactionError)?.bodyError as? PaymentNotYetApplicableError)?.paymentID == "not-yet"
        }
        #expect(try await fixture.count("SELECT count(*) FROM inbox") == 0, "rolled back: the retry can still apply")
        // Once the bot has recorded it, the same notification applies.
        try await fixture.createPayment("not-yet")
        #expect(
            try await fixture.apply(PaymentFixture.notification(.paymentSucceeded, "not-yet")).0.outcome == .applied)
    }

    @Test func aRefundBeforeTheSuccessIsDeferred() async throws {
        let fixture = try await PaymentFixture.start()
        defer { Task { await fixture.stop() } }
        try await fixture.createPayment("p")
        await #expect(throws: PostgresTransactionError.self) {
            _ = try await fixture.apply(PaymentFixture.notification(.refundSucceeded, "r", paymentID: "p"))
        }
        _ = try await fixture.apply(PaymentFixture.notification(.paymentSucceeded, "p"))
        #expect(
            try await fixture.apply(PaymentFixture.notification(.refundSucceeded, "r", paymentID: "p")).0.outcome
                == .applied)
        #expect(try await fixture.payment("p")?.status == "refunded")
    }

    @Test func aRedeliveredNotificationIsIgnoredAsADuplicate() async throws {
        let fixture = try await PaymentFixture.start()
        defer { Task { await fixture.stop() } }
        try await fixture.createPayment("p")
        _ = try await fixture.apply(PaymentFixture.notification(.paymentSucceeded, "p"))
        let (again, log) = try await fixture.apply(PaymentFixture.notification(.paymentSucceeded, "p"))
        #expect(again.duplicate && again.outcome == .applied)
        #expect(try await fixture.logStatus(log).0 == "IGNORED")
        #expect(PaymentFixture.daysFromNow(try #require(try await fixture.subscription()).currentPeriodEnd) == 30)
    }

    /// Two payments of one user succeeding at once: both extend (60 days), neither deadlocks
    /// (payment, then subscription — always in that order).
    @Test func concurrentPaymentsOfOneUserBothExtend() async throws {
        let fixture = try await PaymentFixture.start()
        defer { Task { await fixture.stop() } }
        let ids = (0..<8).map { "c-\($0)" }
        for id in ids { try await fixture.createPayment(id) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for id in ids {
                group.addTask { _ = try await fixture.apply(PaymentFixture.notification(.paymentSucceeded, id)) }
            }
            try await group.waitForAll()
        }
        #expect(PaymentFixture.daysFromNow(try #require(try await fixture.subscription()).currentPeriodEnd) == 240)
        #expect(try await fixture.count("SELECT count(*) FROM subscriptions") == 1)
    }
}
