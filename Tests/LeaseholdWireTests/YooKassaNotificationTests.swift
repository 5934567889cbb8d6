import Foundation
import LeaseholdWire
import Testing

extension UnitTests {
    @Suite("YooKassa notification validation")
    struct YooKassaNotificationTests {
        static func notification(_ json: String) throws -> YooKassaNotification {
            try JSONDecoder().decode(YooKassaNotification.self, from: Data(json.utf8))
        }

        @Test func aPaymentSucceededNotificationIsValid() throws {
            let valid = try Self.notification(
                """
                {"type":"notification","event":"payment.succeeded","object":{"id":"2d8b1a5a-000f-5000-9000-1b6e2f2a6c3e",
                 "status":"succeeded","paid":true,"amount":{"value":"1990.10","currency":"RUB"},"metadata":{}}}
                """
            ).validated()
            #expect(valid.event == .paymentSucceeded)
            #expect(valid.amount == "1990.10")
            #expect(valid.paymentID == "2d8b1a5a-000f-5000-9000-1b6e2f2a6c3e")
            #expect(valid.messageKey == "yk:payment.succeeded:2d8b1a5a-000f-5000-9000-1b6e2f2a6c3e")
        }

        @Test func aRefundNamesItsPayment() throws {
            let valid = try Self.notification(
                """
                {"type":"notification","event":"refund.succeeded","object":{"id":"r-1","payment_id":"p-1",
                 "status":"succeeded","amount":{"value":"100.00","currency":"RUB"}}}
                """
            ).validated()
            #expect(valid.paymentID == "p-1")
            #expect(valid.messageKey == "yk:refund.succeeded:r-1")
        }

        @Test(arguments: [
            (
                #"{"type":"event","event":"payment.succeeded","object":{"id":"p","amount":{"value":"1","currency":"RUB"}}}"#,
                "type must be"
            ),
            (
                #"{"type":"notification","event":"payout.succeeded","object":{"id":"p","amount":{"value":"1","currency":"RUB"}}}"#,
                "unsupported event"
            ),
            (
                #"{"type":"notification","event":"payment.succeeded","object":{"id":"","amount":{"value":"1","currency":"RUB"}}}"#,
                "object.id"
            ),
            (
                #"{"type":"notification","event":"payment.succeeded","object":{"id":"a b","amount":{"value":"1","currency":"RUB"}}}"#,
                "object.id"
            ),
            (
                #"{"type":"notification","event":"payment.succeeded","object":{"id":"p","status":"canceled","amount":{"value":"1","currency":"RUB"}}}"#,
                "does not match"
            ),
            (#"{"type":"notification","event":"payment.succeeded","object":{"id":"p"}}"#, "object.amount"),
            (
                #"{"type":"notification","event":"payment.succeeded","object":{"id":"p","amount":{"value":"1990.105","currency":"RUB"}}}"#,
                "at most 2 decimals"
            ),
            (
                #"{"type":"notification","event":"payment.succeeded","object":{"id":"p","amount":{"value":"1e3","currency":"RUB"}}}"#,
                "decimal"
            ),
            (
                #"{"type":"notification","event":"payment.succeeded","object":{"id":"p","amount":{"value":"0.00","currency":"RUB"}}}"#,
                "positive"
            ),
            (
                #"{"type":"notification","event":"payment.succeeded","object":{"id":"p","amount":{"value":"-5","currency":"RUB"}}}"#,
                "positive"
            ),
            (
                #"{"type":"notification","event":"payment.succeeded","object":{"id":"p","amount":{"value":"5","currency":"rub"}}}"#,
                "currency"
            ),
            (
                #"{"type":"notification","event":"refund.succeeded","object":{"id":"r","amount":{"value":"5","currency":"RUB"}}}"#,
                "payment_id"
            ),
        ])
        func badNotificationsAreRefusedWithAReason(json: String, reason: String) throws {
            #expect {
                try Self.notification(json).validated()
            } throws: { error in
                (error as? YooKassaNotificationError)?.reason.contains(reason) == true
            }
        }

        @Test func amountsAreDecimalStrings() {
            for good in ["1", "1990.10", "0.5", "0.01", "9999999999.99"] {
                #expect(YooKassaNotification.isAmount(good), "\(good)")
            }
            for bad in ["", ".5", "5.", "1,5", "1990.100", "12345678901", "0", "0.00", "+1", " 1", "1e2", "NaN"] {
                #expect(!YooKassaNotification.isAmount(bad), "\(bad)")
            }
        }
    }
}
