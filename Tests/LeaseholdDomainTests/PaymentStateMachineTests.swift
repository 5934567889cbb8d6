import LeaseholdDomain
import Testing

@Suite("Payment state machine")
struct PaymentStateMachineTests {
    typealias Event = YooKassaNotification.Event

    @Test(arguments: [
        (Event.paymentWaitingForCapture, PaymentStatus.pending, PaymentStatus.waitingForCapture),
        (.paymentSucceeded, .pending, .succeeded),
        (.paymentSucceeded, .waitingForCapture, .succeeded),
        (.paymentCanceled, .pending, .canceled),
        (.paymentCanceled, .waitingForCapture, .canceled),
        (.refundSucceeded, .succeeded, .refunded),
    ])
    func forwardMovesApply(event: Event, from: PaymentStatus, to: PaymentStatus) {
        #expect(PaymentStateMachine.decide(event, current: from) == .apply(to: to))
    }

    /// Every pair that is not a forward move is ignored or deferred — never applied. The table
    /// above is the whole list of applicable moves.
    @Test func nothingElseApplies() {
        let forward: Set<String> = [
            "payment.waiting_for_capture/pending", "payment.succeeded/pending", "payment.succeeded/waiting_for_capture",
            "payment.canceled/pending", "payment.canceled/waiting_for_capture", "refund.succeeded/succeeded",
        ]
        for event in Event.allCases {
            for status in PaymentStatus.allCases where !forward.contains("\(event.rawValue)/\(status.rawValue)") {
                let decision = PaymentStateMachine.decide(event, current: status)
                if case .apply = decision {
                    Issue.record("\(event.rawValue) on a \(status.rawValue) payment must not apply")
                }
            }
        }
    }

    @Test func aLateCancelAfterSuccessIsIgnored() {
        guard case .ignore(let reason) = PaymentStateMachine.decide(.paymentCanceled, current: .succeeded) else {
            Issue.record("expected ignore")
            return
        }
        #expect(reason.contains("never goes back"))
    }

    @Test func aRepeatedEventIsIgnored() {
        #expect(
            PaymentStateMachine.decide(.paymentSucceeded, current: .succeeded)
                == .ignore(reason: "payment already succeeded"))
        #expect(
            PaymentStateMachine.decide(.refundSucceeded, current: .refunded)
                == .ignore(reason: "payment already fully refunded"))
    }

    @Test func aRefundBeforeSuccessWaits() {
        for status in [PaymentStatus.pending, .waitingForCapture] {
            guard case .notYet = PaymentStateMachine.decide(.refundSucceeded, current: status) else {
                Issue.record("a refund of a \(status.rawValue) payment must wait for payment.succeeded")
                continue
            }
        }
    }
}
