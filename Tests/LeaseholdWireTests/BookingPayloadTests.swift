import Foundation
import Testing

@testable import LeaseholdWire

extension UnitTests {
    /// The booking payload is written by hand in ingress and read by hand in the worker (both on the
    /// hot path): the bytes must be `JSONEncoder`'s with sorted keys, and the reading must give
    /// exactly what `JSONDecoder` gives — the same request, or a failure where it fails.
    @Suite("Booking payload")
    struct BookingPayloadTests {
        static let texts: [String] = [
            "r-1", "", "with \"quotes\"", "back\\slash", "tab\tnew\nline\r", "\u{0}\u{1}\u{8}\u{c}\u{1f}", "ключ-🔑",
            "a/b", "\u{7f}\u{2028}", "1234567890123456789",
        ]

        static let requests: [BookingRequest] = {
            var requests = [
                BookingRequest(action: .book, userID: 1, slotID: 2),
                BookingRequest(action: .book, userID: 42, slotID: 7, requestID: "lt-1-0"),
                BookingRequest(
                    action: .cancel, userID: 5, interviewID: 9, chatID: -1_001_234_567_890, callbackQueryID: "77"),
                BookingRequest(
                    action: .reschedule, userID: .max, slotID: .min, interviewID: 0, chatID: 0, requestID: "x",
                    callbackQueryID: "y"),
                BookingRequest(action: .book, userID: -1, slotID: 999_999_999_999_999_999),
                BookingRequest(action: .book, userID: 1_000_000_000_000_000_000, slotID: -999_999_999_999_999_999),
            ]
            for text in texts {
                requests.append(BookingRequest(action: .book, userID: 3, slotID: 4, requestID: text))
                requests.append(BookingRequest(action: .cancel, userID: 3, interviewID: 4, callbackQueryID: text))
            }
            return requests
        }()

        @Test("the payload is JSONEncoder's with sorted keys, byte for byte", arguments: requests)
        func payloadMatchesTheEncoder(_ request: BookingRequest) throws {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let expected = try encoder.encode(request)
            #expect(String(decoding: request.payload, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
            #expect(try JSONDecoder().decode(BookingRequest.self, from: Data(request.payload)) == request)
        }

        @Test("a payload reads back as the request, by hand or by the decoder", arguments: requests)
        func payloadRoundTrips(_ request: BookingRequest) throws {
            #expect(BookingRequest(payload: request.payload) == request)
            // What ingress writes for the load (plain ASCII, no escapes) is read without JSONDecoder.
            let plain = [request.requestID, request.callbackQueryID].allSatisfy { text in
                text.map { $0.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E && $0 != 0x22 && $0 != 0x5C && $0 != 0x2F } }
                    ?? true
            }
            if plain && abs(request.userID) < 1_000_000_000_000_000_000
                && [request.slotID, request.interviewID, request.chatID].allSatisfy({
                    ($0.map { abs($0) < 1_000_000_000_000_000_000 }) ?? true
                })
            {
                #expect(BookingRequest.plain(request.payload) == request)
            }
        }

        /// Payloads the hand-written reader takes, leaves to `JSONDecoder`, or that fail.
        static let payloads: [String] = [
            #"{"action":"book","user_id":1,"slot_id":2}"#,
            " { \"slot_id\" : 2 ,\"user_id\":\t1,\"action\":\"book\"}\r\n",
            #"{"action":"book","user_id":1,"slot_id":2,"chat_id":null,"request_id":null,"callback_query_id":null,"interview_id":null}"#,
            #"{"action":"cancel","user_id":1,"interview_id":0}"#,
            #"{"action":"cancel","user_id":-5,"interview_id":-0}"#,
            #"{"action":"book","user_id":1.0,"slot_id":2}"#,
            #"{"action":"book","user_id":1e2,"slot_id":2}"#,
            #"{"action":"book","user_id":1.5,"slot_id":2}"#,
            #"{"action":"book","user_id":9223372036854775807,"slot_id":2}"#,
            #"{"action":"book","user_id":9223372036854775808,"slot_id":2}"#,
            #"{"action":"book","user_id":-9223372036854775808,"slot_id":2}"#,
            #"{"action":"book","user_id":999999999999999999,"slot_id":2}"#,
            #"{"action":"book","user_id":01,"slot_id":2}"#,
            #"{"action":"book","user_id":-,"slot_id":2}"#,
            #"{"action":"book","user_id":"1","slot_id":2}"#,
            #"{"action":"book","user_id":null,"slot_id":2}"#,
            #"{"action":null,"user_id":1}"#,
            #"{"action":"steal","user_id":1,"slot_id":2}"#,
            #"{"action":"Book","user_id":1,"slot_id":2}"#,
            #"{"user_id":1,"slot_id":2}"#,
            #"{"action":"book","slot_id":2}"#,
            #"{"action":"book","user_id":1,"slot_id":"2"}"#,
            #"{"action":"book","user_id":1,"slot_id":true}"#,
            #"{"action":"book","user_id":1,"request_id":5}"#,
            #"{"action":"book","user_id":1,"request_id":"a\/b","callback_query_id":"\u0041"}"#,
            #"{"action":"book","user_id":1,"request_id":"é"}"#,
            #"{"action":"book","user_id":1,"request_id":"a"#,
            "{\"action\":\"book\",\"user_id\":1,\"request_id\":\"a\tb\"}",
            #"{"action":"book","user_id":1,"slot_id":2,"extra":[1,{"a":2}]}"#,
            #"{"action":"book","user_id":1,"slot_id":2,"slot_id":3}"#,
            #"{"action":"book","user_id":1,"user_id":2}"#,
            #"{"action":"book","user_id":1,"slot_id":2} x"#,
            #"{"action":"book","user_id":1,"slot_id":2}}"#,
            #"{"action":"book","user_id":1,"slot_id":2,}"#,
            #"{"action":"book","user_id":1 "slot_id":2}"#,
            #"{"action":"book","user_id":1,"slot_id":nul}"#,
            #"{"action":"book","user_id":1,"slot_id":nullx}"#,
            #"{"action":"book","user_id":12x}"#,
            "\u{feff}{\"action\":\"book\",\"user_id\":1}",
            #"[{"action":"book","user_id":1}]"#,
            "{}", "", " ", "null", "1", #""book""#, "{", "}",
        ]

        @Test("reading a payload gives what JSONDecoder gives", arguments: payloads)
        func readingMatchesTheDecoder(_ payload: String) {
            let bytes = Array(payload.utf8)
            let expected = try? JSONDecoder().decode(BookingRequest.self, from: Data(bytes))
            #expect(BookingRequest(payload: bytes) == expected)
            if let plain = BookingRequest.plain(bytes) {
                #expect(plain == expected)
            }
        }

        @Test("invalid UTF-8 and stray bytes are left to the decoder")
        func invalidBytes() {
            for bytes: [UInt8] in [
                Array(#"{"action":"book","user_id":1,"request_id":""#.utf8) + [0xFF] + Array(#""}"#.utf8),
                Array(#"{"action":"book","user_id":1}"#.utf8) + [0],
                [0xEF, 0xBB, 0xBF] + Array(#"{"action":"book","user_id":1}"#.utf8),
            ] {
                #expect(BookingRequest.plain(bytes) == nil)
                #expect(
                    BookingRequest(payload: bytes)
                        == (try? JSONDecoder().decode(BookingRequest.self, from: Data(bytes))))
            }
        }
    }
}
