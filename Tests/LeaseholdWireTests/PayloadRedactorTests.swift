import Foundation
import LeaseholdWire
import Testing

extension UnitTests {
    /// What operators see of a payload: the listed fields' values replaced at any depth, by their
    /// decoded names, and nothing of a payload that does not parse.
    @Suite("PayloadRedactor")
    struct PayloadRedactorTests {
        /// A Telegram message update with a user's name, username, phone and text, and a YooKassa
        /// notification with card details, a receipt and metadata.
        static let telegram = #"""
            {"update_id":7,"message":{"message_id":3,"from":{"id":42,"is_bot":false,"first_name":"Ivan",
            "last_name":"Petrov","username":"ivanp"},"chat":{"id":42,"type":"private","first_name":"Ivan"},
            "text":"my phone is +79990001122","contact":{"phone_number":"+79990001122","first_name":"Ivan"}}}
            """#
        static let yookassa = #"""
            {"type":"notification","event":"payment.succeeded","object":{"id":"pay-1","status":"succeeded",
            "amount":{"value":"10.00","currency":"RUB"},"payment_method":{"type":"bank_card","id":"pm-1",
            "card":{"first6":"555555","last4":"4477","expiry_month":"07","expiry_year":"2031","card_type":"MasterCard"},
            "title":"Bank card *4477"},"description":"Order for Ivan Petrov","metadata":{"email":"ivan@example.org"},
            "receipt":{"customer":{"email":"ivan@example.org","phone":"79990001122"}}}}
            """#

        static let secrets = [
            "Ivan", "Petrov", "ivanp", "79990001122", "my phone", "555555", "4477", "2031", "MasterCard",
            "ivan@example.org", "Order for",
        ]

        @Test func theDefaultListRemovesEveryPersonalAndPaymentValueAndKeepsTheRest() throws {
            for payload in [Self.telegram, Self.yookassa] {
                for shown in [PayloadRedactor.standard.pretty(payload), PayloadRedactor.standard.compact(payload)] {
                    for secret in Self.secrets {
                        #expect(!shown.contains(secret), "\(secret) in \(shown)")
                    }
                    #expect(shown.contains(PayloadRedactor.marker))
                    // What is shown is still JSON.
                    #expect(try JSONSerialization.jsonObject(with: Data(shown.utf8)) is [String: Any])
                }
            }
            let telegram = PayloadRedactor.standard.compact(Self.telegram)
            #expect(telegram.contains(#""update_id":7"#) && telegram.contains(#""id":42"#), "\(telegram)")
            #expect(telegram.contains(#""first_name":"[redacted]""#))
            #expect(telegram.contains(#""contact":"[redacted]""#), "a whole object is replaced, shape and all")
            let payment = PayloadRedactor.standard.compact(Self.yookassa)
            #expect(payment.contains(#""id":"pay-1""#) && payment.contains(#""value":"10.00""#), "\(payment)")
            #expect(payment.contains(#""payment_method":"[redacted]""#))
        }

        @Test func offShowsThePayloadAsItIs() {
            let shown = PayloadRedactor.off.compact(Self.yookassa)
            for secret in ["555555", "4477", "ivan@example.org", "Order for", "79990001122"] {
                #expect(shown.contains(secret), "\(secret)")
            }
            #expect(PayloadRedactor.off.pretty("not json <b>") == "not json <b>")
            #expect(!PayloadRedactor.off.isOn && PayloadRedactor.standard.isOn)
        }

        @Test(
            "a payload that does not parse is never shown",
            arguments: [
                #"{"username":"ivanp""#, "username=ivanp\nkind=booking\n", #"{"username":"ivanp",}"#,
                "<script>alert('ivanp')</script>", "",
                // The same key twice in one object: which value would a reader keep?
                #"{"username":"ivanp","username":"ivanp2"}"#,
                String(repeating: "[", count: 65) + #""ivanp""# + String(repeating: "]", count: 65),
            ])
        func unparseable(payload: String) {
            #expect(
                PayloadRedactor.standard.pretty(payload)
                    == PayloadRedactor.unparseable(byteCount: payload.utf8.count))
            #expect(PayloadRedactor.standard.compact(Array(payload.utf8) + [0xFF]).hasPrefix("[unparseable payload"))
        }

        @Test func escapedCaseChangedNestedAndRepeatedKeysAreRedactedByTheNameTheySpell() {
            let payload = #"""
                {"user\u006eame":"ivanp","USERNAME":"IVANP2","a":[{"b":[{"phone_number":"+7999"}]}],
                "c":[{"username":"twice-1"},{"username":"twice-2"}],"note":"\u0069vanp-in-a-note"}
                """#
            let shown = PayloadRedactor.standard.compact(payload)
            for secret in ["ivanp\"", "IVANP2", "+7999", "twice-1", "twice-2"] {
                #expect(!shown.contains(secret), "\(secret) in \(shown)")
            }
            // A field not in the list is kept, escaped characters decoded.
            #expect(shown.contains(#""note":"ivanp-in-a-note""#), "\(shown)")
        }

        @Test func dottedPathsMatchOnlyFromTheTop() {
            let redactor = PayloadRedactor(fields: ["object.id", "Note"])
            let shown = redactor.compact(#"{"object":{"id":"pay-1","inner":{"id":"keep"}},"id":"top","note":"x"}"#)
            #expect(shown == #"{"id":"top","note":"[redacted]","object":{"id":"[redacted]","inner":{"id":"keep"}}}"#)
        }

        @Test func theSettingExtendsReplacesOrTurnsOffAndRefusesWhatItCannotRead() throws {
            #expect(try PayloadRedactor.parse("default") == .standard)
            #expect(try PayloadRedactor.parse(" none ") == .off)
            #expect(try PayloadRedactor.parse("a, b.c") == PayloadRedactor(fields: ["a", "b.c"]))
            let extended = try PayloadRedactor.parse("+order_note")
            #expect(extended.fields == PayloadRedactor.defaultFields + ["order_note"])
            for bad in ["", "  ", "a,,b", "a b", "a..b", "+", "a,<b>", ".a"] {
                #expect(throws: PayloadRedactor.FieldListError.self, "\(bad)") { try PayloadRedactor.parse(bad) }
            }
        }
    }
}
