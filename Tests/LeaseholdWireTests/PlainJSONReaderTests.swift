import Foundation
import Testing

@testable import LeaseholdWire

extension UnitTests {
    /// The forward reader's flat objects, on bytes nothing has checked: whatever it accepts,
    /// `JSONSerialization` reads as the same members; everything else it leaves alone (`nil`).
    @Suite("Plain JSON reader")
    struct PlainJSONReaderTests {
        static let accepted: [String] = [
            "{}", " {\t}\r\n", #"{"a":1}"#, #"{"a":-1,"b":"x y","c":null}"#, #"{ "a" : 0 , "b" : "" }"#,
            #"{"n":999999999999999999,"m":-999999999999999999}"#, #"{"s":"~!@#$%^&*()_+{}[]:;'<>,.?| "}"#,
        ]

        @Test(arguments: accepted)
        func acceptedObjectsReadAsJSONSerializationReadsThem(_ text: String) throws {
            let members = try #require(PlainJSONReader.flatObject(Array(text.utf8)))
            let reference = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            #expect(members.count == reference.count)
            for (key, value) in members {
                switch value {
                case .string(let text): #expect(reference[key] as? String == text)
                case .integer(let number): #expect((reference[key] as? NSNumber)?.int64Value == number)
                case .null: #expect(reference[key] is NSNull)
                }
            }
        }

        static let declined: [String] = [
            "", "[]", "1", "null", #""a""#, "{", #"{"a"}"#, #"{"a":}"#, #"{"a":1,}"#, #"{,}"#, #"{"a":1}x"#,
            #"{"a":1}}"#, #"{"a":true}"#, #"{"a":false}"#, #"{"a":[]}"#, #"{"a":{}}"#, #"{"a":1.0}"#, #"{"a":1e1}"#,
            #"{"a":-0}"#, #"{"a":00}"#, #"{"a":01}"#, #"{"a":-}"#, #"{"a":1000000000000000000}"#, #"{"a":"\n"}"#,
            #"{"a":"\u0041"}"#, #"{"a":"é"}"#, "{\"a\":\"\t\"}", #"{"a":1,"a":2}"#, #"{"\u0061":1}"#, #"{a:1}"#,
            #"{"a":nul}"#, #"{"a":nulll}"#, #"{"a":1 2}"#, "\u{feff}{}", "{}\u{0}", "{\u{b}}",
        ]

        @Test(arguments: declined)
        func everythingElseIsDeclined(_ text: String) {
            #expect(PlainJSONReader.flatObject(Array(text.utf8)) == nil)
        }

        /// The same token rules hold on a body `StrictJSON` has passed (`-0` gives up there too), but
        /// for bytes above 0x7F in a string, whose UTF-8 the check has validated; values it does not
        /// read are skipped there, and only there.
        @Test func checkedBodiesKeepTheTokenRules() {
            func integer(_ text: String) -> Int64? {
                PlainJSONReader.read(Array(text.utf8), .strictlyChecked) { reader in
                    var value: Int64?
                    let read = reader.object { reader, _ in
                        value = reader.integer()
                        return value != nil
                    }
                    return read ? value : nil
                }
            }
            #expect(integer(#"{"a":-0}"#) == nil)
            #expect(integer(#"{"a":0}"#) == 0)
            #expect(integer(#"{"a": -17 }"#) == -17)
            func string(_ text: String) -> String? {
                PlainJSONReader.read(Array(text.utf8), .strictlyChecked) { reader in
                    reader.strings(["a"]).flatMap { $0[0] ?? nil }
                }
            }
            #expect(string(#"{"a":"é"}"#) == "é")
            #expect(string(#"{"a":"\u00e9"}"#) == nil)
            #expect(string(#"{"b":[1,{"c":2}],"a":"x"}"#) == "x")
            #expect(PlainJSONReader.read(Array(#"{"b":[1],"a":"x"}"#.utf8), .unchecked) { $0.strings(["a"]) } == nil)
        }
    }
}
