import Foundation
import Testing

@testable import LeaseholdWire

extension UnitTests {
    /// `POST /v1/bookings` bodies of the plain shape skip `StrictJSON` and `JSONDecoder`: the
    /// outcome must be the one the full way gives, the same booking or the same rejection, for good
    /// and bad bodies alike.
    @Suite("Booking body")
    struct BookingBodyTests {
        /// The full way: the strict check and `JSONDecoder`, then the field rules.
        static func reference(_ body: Data) -> Result<IngressBodies.Booking, BodyRejection> {
            do throws(BodyRejection) {
                let decoded = try IngressJSON.decode(IngressBodies.CreateBooking.self, from: body)
                guard IngressBodies.isValidRequestID(decoded.requestID) else {
                    throw BodyRejection(.invalid, "field request_id must be 1-128 characters of A-Z a-z 0-9 . _ : -")
                }
                guard decoded.userID > 0 else { throw BodyRejection(.invalid, "field user_id must be positive") }
                guard decoded.slotID > 0 else { throw BodyRejection(.invalid, "field slot_id must be positive") }
                return .success(
                    IngressBodies.Booking(
                        requestID: decoded.requestID,
                        booking: .init(
                            action: .book, userID: decoded.userID, slotID: decoded.slotID, requestID: decoded.requestID)
                    ))
            } catch {
                return .failure(error)
            }
        }

        static func decoded(_ body: Data) -> Result<IngressBodies.Booking, BodyRejection> {
            do throws(BodyRejection) {
                return .success(try IngressBodies.booking(body))
            } catch {
                return .failure(error)
            }
        }

        static let plainBodies: [String] = [
            #"{"request_id":"lt-1-0","user_id":1,"slot_id":2}"#,
            #"{"slot_id":2,"user_id":1,"request_id":"a.b_c:d-E9"}"#,
            " {\t\"request_id\" : \"r\" ,\r\n\"user_id\":999999999999999999, \"slot_id\" : 7 }\n",
            // Plain, yet refused by the field rules, with the full way's reasons.
            #"{"request_id":"","user_id":1,"slot_id":2}"#,
            #"{"request_id":"a b","user_id":1,"slot_id":2}"#,
            #"{"request_id":"r","user_id":0,"slot_id":2}"#,
            #"{"request_id":"r","user_id":-3,"slot_id":2}"#,
            #"{"request_id":"r","user_id":3,"slot_id":0}"#,
            #"{"request_id":"r","user_id":3,"slot_id":-1}"#,
            "{\"request_id\":\"" + String(repeating: "x", count: 129) + "\",\"user_id\":1,\"slot_id\":2}",
        ]

        static let otherBodies: [String] = [
            #"{"request_id":"r","user_id":1.0,"slot_id":2}"#,
            #"{"request_id":"r","user_id":1e2,"slot_id":2}"#,
            #"{"request_id":"r","user_id":1.5,"slot_id":2}"#,
            #"{"request_id":"r","user_id":-0,"slot_id":2}"#,
            #"{"request_id":"r","user_id":9223372036854775807,"slot_id":2}"#,
            #"{"request_id":"r","user_id":9223372036854775808,"slot_id":2}"#,
            #"{"request_id":"r","user_id":1e400,"slot_id":2}"#,
            #"{"request_id":"r","user_id":"1","slot_id":2}"#,
            #"{"request_id":"r","user_id":null,"slot_id":2}"#,
            #"{"request_id":null,"user_id":1,"slot_id":2}"#,
            #"{"request_id":7,"user_id":1,"slot_id":2}"#,
            #"{"request_id":"r","user_id":1}"#,
            #"{"user_id":1,"slot_id":2}"#,
            #"{"request_id":"r","user_id":1,"slot_id":2,"extra":true}"#,
            #"{"request_id":"r","user_id":1,"slot_id":2,"note":null}"#,
            #"{"request_id":"r","user_id":1,"slot_id":2,"slot_id":3}"#,
            #"{"request_id":"r","request_id":"s","user_id":1,"slot_id":2}"#,
            #"{"request_id":"r\u0000","user_id":1,"slot_id":2}"#,
            #"{"request_id":"\u0072","user_id":1,"slot_id":2}"#,
            #"{"request_id":"a\/b","user_id":1,"slot_id":2}"#,
            #"{"request_id":"ключ","user_id":1,"slot_id":2}"#,
            "{\"request_id\":\"a\nb\",\"user_id\":1,\"slot_id\":2}",
            #"{"request_id":"r","user_id":1,"slot_id":2} x"#,
            #"{"request_id":"r","user_id":1,"slot_id":2},"#,
            #"{"request_id":"r","user_id":1,"slot_id":2,}"#,
            #"{"request_id":"r","user_id":1 "slot_id":2}"#,
            #"{"request_id":"r","user_id":01,"slot_id":2}"#,
            #"[{"request_id":"r","user_id":1,"slot_id":2}]"#,
            "\u{feff}{\"request_id\":\"r\",\"user_id\":1,\"slot_id\":2}",
            "{}", "", " ", "null", "[]", "1", #""r""#, "{", "{\"request_id\":\"r\"",
            String(repeating: "[", count: 10_000),
        ]

        @Test("plain bodies take the short way and end as the full way ends", arguments: plainBodies)
        func plainBodyTakesTheShortWay(_ body: String) {
            let data = Data(body.utf8)
            #expect(IngressBodies.plainBooking(data) != nil)
            #expect(Self.decoded(data) == Self.reference(data))
        }

        @Test("other bodies end as the full way ends", arguments: otherBodies)
        func otherBodyEndsAsTheFullWayEnds(_ body: String) {
            let data = Data(body.utf8)
            #expect(Self.decoded(data) == Self.reference(data))
        }

        @Test("invalid UTF-8 ends as the full way ends")
        func invalidUTF8() {
            let data = Data(#"{"request_id":""#.utf8 + [0xC3, 0x28] + #"","user_id":1,"slot_id":2}"#.utf8)
            #expect(IngressBodies.plainBooking(data) == nil)
            #expect(Self.decoded(data) == Self.reference(data))
        }
    }
}
