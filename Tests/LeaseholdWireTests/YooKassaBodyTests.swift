import Foundation
import Testing

@testable import LeaseholdWire

extension UnitTests {
    /// `POST /yookassa/webhook` bodies are read by ``YooKassaNotification/init(plain:)`` when it can,
    /// by `JSONDecoder` when it gives up: the validated notification (or the rejection, reason
    /// included) must be the one the full way gives, for every body.
    @Suite("YooKassa body")
    struct YooKassaBodyTests {
        /// A notification as YooKassa sends it, with the payment's other members.
        static func notification(
            type: String = #""notification""#, event: String = #""payment.succeeded""#,
            id: String = #""2d8b1a5a-000f-5000-9000-1b6e2f2a6c3e""#, status: String? = #""succeeded""#,
            amount: String? = #"{"value": "1990.10", "currency": "RUB"}"#, paymentID: String? = nil,
            cancellation: String? = nil
        ) -> String {
            var members = [#""id": \#(id)"#]
            if let status { members.append(#""status": \#(status)"#) }
            if let amount { members.append(#""amount": \#(amount)"#) }
            if let paymentID { members.append(#""payment_id": \#(paymentID)"#) }
            if let cancellation { members.append(#""cancellation_details": \#(cancellation)"#) }
            members += [
                #""income_amount": {"value": "1920.45", "currency": "RUB"}"#,
                #""payment_method": {"type": "bank_card", "id": "2d8b", "saved": false, "card": {"last4": "4444"}}"#,
                #""created_at": "2026-11-22T10:00:00.000Z", "paid": true, "refundable": true, "test": false"#,
                #""metadata": {"order": "Заказ \"7\"", "n": [1, -0.5e3, true, null]}"#,
            ]
            return #"{"type": \#(type), "event": \#(event), "object": {\#(members.joined(separator: ", "))}}"#
        }

        /// Bodies the plain reader answers itself (accepted or refused by the field rules).
        static let plainBodies: [String] = [
            notification(),
            notification(event: #""payment.waiting_for_capture""#, status: #""waiting_for_capture""#),
            notification(
                event: #""payment.canceled""#, status: #""canceled""#,
                cancellation: #"{"party": "yoo_money", "reason": "expired_on_confirmation"}"#),
            notification(event: #""payment.canceled""#, status: "null", cancellation: #"{"reason": null}"#),
            notification(event: #""payment.canceled""#, status: nil, cancellation: "null"),
            notification(event: #""refund.succeeded""#, id: #""rf-1""#, paymentID: #""pay-1""#),
            notification(event: #""refund.succeeded""#, id: #""rf-1""#, paymentID: "null"),
            notification(status: nil, amount: #"{"currency": "RUB", "value": "5"}"#),
            // Decoded, then refused by the field rules, as the full way refuses them.
            notification(type: #""event""#), notification(event: #""payment.exploded""#),
            notification(id: #""a b""#), notification(status: #""canceled""#),
            notification(amount: nil), notification(amount: "null"),
            notification(amount: #"{"value": "1.234", "currency": "RUB"}"#),
            notification(amount: #"{"value": "10", "currency": "rub"}"#),
            notification(event: #""refund.succeeded""#, id: #""rf-1""#),
            notification(id: #""""#),
        ]

        /// Bodies it hands to `JSONDecoder`, whose answer or error is then the one given.
        static let otherBodies: [String] = [
            notification(type: "5"), notification(type: "null"), notification(event: "[]"),
            notification(id: "7"), notification(id: #""pay\u002d1""#), notification(status: "true"),
            notification(amount: #"{"value": 10, "currency": "RUB"}"#), notification(amount: #"{"value": "10"}"#),
            notification(amount: #"{"value": "10", "currency": null}"#), notification(amount: #""10 RUB""#),
            notification(paymentID: "1"), notification(cancellation: #"{"party": 1}"#),
            notification(cancellation: #"["x"]"#),
            #"{"type": "notification", "event": "payment.succeeded"}"#,
            #"{"type": "notification", "event": "payment.succeeded", "object": null}"#,
            #"{"type": "notification", "object": {"id": "p"}}"#,
            #"{"event": "payment.succeeded", "object": {"id": "p"}}"#,
            #"{"type": "notification", "event": "payment.succeeded", "object": {"status": "succeeded"}}"#,
            #"{"typ\u0065": "notification", "event": "payment.succeeded", "object": {"id": "p"}}"#,
            "[]", "5", "null", "{}",
        ]

        @Test("a plain body is read without JSONDecoder, with the decoder's answer", arguments: plainBodies)
        func plainBodyAnswersAsTheDecoder(_ body: String) throws {
            #expect(YooKassaNotification(plain: Array(body.utf8)) != nil, "the plain reader answers")
            #expect(
                BodyDamage.result(IngressBodies.yookassa, body)
                    == BodyDamage.result(IngressBodies.yookassaDecodedFully, body))
        }

        @Test("any other body goes to JSONDecoder and gets its answer or error", arguments: otherBodies)
        func otherBodyGetsTheDecodersAnswer(_ body: String) throws {
            #expect(YooKassaNotification(plain: Array(body.utf8)) == nil, "the plain reader gives up")
            #expect(
                BodyDamage.result(IngressBodies.yookassa, body)
                    == BodyDamage.result(IngressBodies.yookassaDecodedFully, body))
        }

        @Test("the plain reader reads the fields the decoder reads")
        func readsTheFields() throws {
            let body = Self.notification(
                event: #""payment.canceled""#, status: #""canceled""#, cancellation: #"{"reason": "card_expired"}"#)
            let valid = try IngressBodies.yookassa(Data(body.utf8))
            #expect(valid.event == .paymentCanceled && valid.objectID == "2d8b1a5a-000f-5000-9000-1b6e2f2a6c3e")
            #expect(valid.amount == "1990.10" && valid.currency == "RUB" && valid.cancellationReason == "card_expired")
        }

        /// Thousands of damaged notifications (fixed seed); whatever each becomes, both ways agree.
        @Test("damaged notifications get the same answer both ways")
        func damagedNotificationsAgree() {
            var plainAnswers = 0
            for body in BodyDamage.damaged(Self.plainBodies, seed: 0x0b0c_a55a) {
                if (try? StrictJSON.check(Array(body.utf8))) != nil,
                    YooKassaNotification(plain: Array(body.utf8)) != nil
                {
                    plainAnswers += 1
                }
                #expect(
                    BodyDamage.result(IngressBodies.yookassa, body)
                        == BodyDamage.result(IngressBodies.yookassaDecodedFully, body),
                    "\(body)")
            }
            #expect(plainAnswers > 100, "the damage left many bodies the plain reader answers")
        }
    }
}
