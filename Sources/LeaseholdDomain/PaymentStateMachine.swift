/// A payment's status, as stored in `payments.status`.
public enum PaymentStatus: String, Sendable, CaseIterable {
    case pending
    case waitingForCapture = "waiting_for_capture"
    case succeeded
    case canceled
    case refunded
}

/// The one-way state machine of a payment:
///
/// ```
/// pending ──► waiting_for_capture ──► succeeded ──► refunded
///    │  └──────────────────────────────►  ▲
///    └──────────► canceled ◄──────── waiting_for_capture
/// ```
///
/// A status never goes back. An event that would move it backwards or sideways (a late
/// `payment.canceled` after `payment.succeeded`, a repeated `payment.succeeded`) is **ignored**:
/// logged as IGNORED, never applied. A refund before the payment is known to have succeeded is
/// **not yet** applicable: YooKassa refunds only succeeded payments, so our `payment.succeeded`
/// is late, and the refund is retried until it arrives.
public enum PaymentStateMachine {
    /// What to do with an event, given the payment's current status.
    public enum Decision: Sendable, Equatable {
        /// Apply the event; the payment moves to `to` (for a partial refund the caller keeps
        /// `succeeded`: only a full refund reaches `refunded`).
        case apply(to: PaymentStatus)
        /// Record and ignore: the event is late or repeated.
        case ignore(reason: String)
        /// Cannot apply yet; retry later.
        case notYet(reason: String)
    }

    public static func decide(_ event: YooKassaNotification.Event, current: PaymentStatus) -> Decision {
        switch (event, current) {
        case (.paymentWaitingForCapture, .pending):
            return .apply(to: .waitingForCapture)
        case (.paymentSucceeded, .pending), (.paymentSucceeded, .waitingForCapture):
            return .apply(to: .succeeded)
        case (.paymentCanceled, .pending), (.paymentCanceled, .waitingForCapture):
            return .apply(to: .canceled)
        case (.refundSucceeded, .succeeded):
            return .apply(to: .refunded)
        case (.refundSucceeded, .pending), (.refundSucceeded, .waitingForCapture):
            return .notYet(
                reason: "refund for a payment that is still \(current.rawValue); waiting for payment.succeeded")
        case (.refundSucceeded, .canceled):
            return .ignore(reason: "refund for a canceled payment")
        case (.refundSucceeded, .refunded):
            return .ignore(reason: "payment already fully refunded")
        case (_, let status) where status == target(of: event):
            return .ignore(reason: "payment already \(status.rawValue)")
        case (_, let status):
            return .ignore(
                reason: "\(event.rawValue) after the payment became \(status.rawValue): status never goes back")
        }
    }

    private static func target(of event: YooKassaNotification.Event) -> PaymentStatus {
        switch event {
        case .paymentWaitingForCapture: .waitingForCapture
        case .paymentSucceeded: .succeeded
        case .paymentCanceled: .canceled
        case .refundSucceeded: .refunded
        }
    }
}
