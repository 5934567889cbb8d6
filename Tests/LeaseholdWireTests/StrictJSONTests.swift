import LeaseholdWire
import Testing

extension UnitTests {
    /// The strict JSON check every ingress body passes before `JSONDecoder` sees it: RFC 8259 values
    /// get through, and each form that `JSONDecoder` would accept but a later reader (the worker,
    /// PostgreSQL's `jsonb`) would read differently or refuse is stopped here with a one-line reason.
    @Suite("StrictJSON")
    struct StrictJSONTests {
        static let accepted: [String] = [
            "{}", "[]", "0", "-0", "1.5e-3", "-12.25E+2", "true", "false", "null", #""text""#,
            #"{"a":[1,2,{"b":null}],"c":"\u00e9\ud83d\ude00\n\"\\\/"}"#,
            " \t\r\n{ \"a\" : 1 } \n",
            // The same key in different objects is no duplicate.
            #"{"a":{"id":1},"b":{"id":2}}"#,
            // Integers up to 18 characters skip the Double parse; longer ones take it.
            "[123456789012345678, -12345678901234567, 1234567890123456789012345]",
            // Zero written with a fraction or exponent is zero, not an underflow.
            "[0.0, 0e10, -0.000]",
            String(repeating: "[", count: StrictJSON.maxDepth) + String(repeating: "]", count: StrictJSON.maxDepth),
            // A Telegram callback update as the Bot API sends it.
            #"{"update_id":1,"callback_query":{"id":"9","from":{"id":42,"is_bot":false,"first_name":"Иван"},"data":"book:7"}}"#,
        ]

        @Test(arguments: accepted)
        func rfc8259ValuesPass(_ body: String) throws {
            try StrictJSON.check(Array(body.utf8))
        }

        /// A body and a fragment of the reason it must be refused with (always a 400).
        static let refused: [(body: [UInt8], reason: String)] = [
            (Array(#"{"event":"payment.canceled","event":"payment.succeeded"}"#.utf8), #"duplicate key "event""#),
            // Escapes that decode to the same key are the same key.
            (Array(#"{"id":1,"\u0069d":2}"#.utf8), #"duplicate key "id""#),
            (Array(#"{"i\u0064":1,"id":2}"#.utf8), #"duplicate key "id""#),
            (Array(#"{"a\nb":1,"a\u000ab":2}"#.utf8), "duplicate key"),
            (Array(#"{"a":"x\u0000y"}"#.utf8), #"\u0000"#),
            (Array(#"{"a":"\ud800"}"#.utf8), "unpaired surrogate"),
            (Array(#"{"a":"\udc00\ud800"}"#.utf8), "unpaired surrogate"),
            (Array(#"{"a":"\ud800\u0041"}"#.utf8), "unpaired surrogate"),
            (Array("[1e400]".utf8), "out of range"),
            (Array("[1e-400]".utf8), "out of range"),
            (Array(("[" + String(repeating: "9", count: StrictJSON.maxNumberLength + 1) + "]").utf8), "out of range"),
            (
                Array(
                    (String(repeating: "[", count: StrictJSON.maxDepth + 1) + String(repeating: "]", count: 65)).utf8),
                "nested deeper than \(StrictJSON.maxDepth)"
            ),
            ([0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xFF, 0x22, 0x7D], "not valid UTF-8"),
            ([0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xC3, 0x22, 0x7D], "not valid UTF-8"),
            (Array(#"{"a":1} {"b":2}"#.utf8), "unexpected data after the value"),
            (Array(#"{"a":1"#.utf8), "unexpected end"),
            (Array(#"{"a":"#.utf8), "unexpected end"),
            (Array(#"{"a":"abc"#.utf8), "unterminated string"),
            (Array(#"{"a":1,}"#.utf8), "expected a key"),
            (Array("[1,]".utf8), "unexpected character"),
            (Array("{'a':1}".utf8), "expected a key"),
            (Array(#"{"a" 1}"#.utf8), "expected ':'"),
            (Array("[01]".utf8), "expected ','"),
            (Array("[+1]".utf8), "unexpected character"),
            (Array("[.5]".utf8), "unexpected character"),
            (Array("[1.]".utf8), "invalid number"),
            (Array("[NaN]".utf8), "unexpected character"),
            (Array("[Infinity]".utf8), "unexpected character"),
            (Array("[tru]".utf8), "unexpected character"),
            (Array(#"["a\qb"]"#.utf8), "invalid escape"),
            (Array(#"["\u12G4"]"#.utf8), #"invalid \u escape"#),
            (Array("[\"a\tb\"]".utf8), "control character in a string"),
            (Array("".utf8), "unexpected end"),
            (Array("   ".utf8), "unexpected end"),
        ]

        @Test(arguments: 0..<refused.count)
        func hostileOrMalformedBodiesAreRefusedWithAReason(_ index: Int) {
            let (body, reason) = Self.refused[index]
            do {
                try StrictJSON.check(body)
                Issue.record("accepted: \(String(decoding: body.prefix(80), as: UTF8.self))")
            } catch {
                #expect(error.status == 400)
                #expect(error.reason.contains(reason), "\(error.reason) should say \(reason)")
                #expect(!error.reason.contains("\n"))
            }
        }

        /// Depth costs nothing but the bytes: a million open brackets is refused without recursion
        /// (a recursive parser overflows its stack long before this).
        @Test func aMillionOpenBracketsAreRefusedWithoutRecursion() {
            #expect(throws: BodyRejection.self) {
                try StrictJSON.check(Array(repeating: UInt8(ascii: "["), count: 1_000_000))
            }
        }
    }
}
