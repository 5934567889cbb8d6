import Foundation
import Testing

@testable import LeaseholdDomain

/// The reader for flat JSON objects: whatever it accepts, `JSONSerialization` reads as the same
/// members; everything else it leaves alone (`nil`).
@Suite("Flat JSON")
struct FlatJSONTests {
    static let accepted: [String] = [
        "{}", " {\t}\r\n", #"{"a":1}"#, #"{"a":-1,"b":"x y","c":null}"#, #"{ "a" : 0 , "b" : "" }"#,
        #"{"n":999999999999999999,"m":-999999999999999999}"#, #"{"s":"~!@#$%^&*()_+{}[]:;'<>,.?| "}"#,
    ]

    @Test(arguments: accepted)
    func acceptedObjectsReadAsJSONSerializationReadsThem(_ text: String) throws {
        let object = try #require(FlatJSONObject(Array(text.utf8)))
        let reference = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object.members.count == reference.count)
        for (key, value) in object.members {
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
        #expect(FlatJSONObject(Array(text.utf8)) == nil)
    }
}
