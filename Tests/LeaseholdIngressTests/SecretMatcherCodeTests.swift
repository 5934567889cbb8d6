import Crypto
import Foundation
import Testing

@testable import LeaseholdIngress

extension UnitTests {
    /// The matcher computes HMAC-SHA256 from precomputed pads: its codes must be `HMAC<SHA256>`'s.
    @Suite("Secret matcher's HMAC")
    struct SecretMatcherCodeTests {
        static let values: [String] = [
            "", "x", "test-telegram-secret", "sécret-ключ", String(repeating: "a", count: 55),
            String(repeating: "b", count: 56), String(repeating: "c", count: 63), String(repeating: "d", count: 64),
            String(repeating: "e", count: 65), String(repeating: "f", count: 1000), "\u{0}\u{1}",
        ]

        @Test("codes equal HMAC<SHA256>'s for keys of 16, 32 and 64 bytes", arguments: [16, 32, 64])
        func codesMatchHMAC(_ keyBytes: Int) {
            let key = SymmetricKey(size: SymmetricKeySize(bitCount: keyBytes * 8))
            let matcher = SecretMatcher(secret: "s", key: key)
            for value in Self.values {
                let expected = HMAC<SHA256>.authenticationCode(for: Data(value.utf8), using: key)
                #expect(Array(matcher.code(value.utf8)) == Array(expected))
                #expect(Array(matcher.code(Array(value.utf8))) == Array(expected))
                #expect(Array(matcher.code(value.utf8.lazy.map { $0 })) == Array(expected))
            }
        }

        @Test("a matcher with a given key matches exactly its secret")
        func givenKey() {
            let matcher = SecretMatcher(secret: "token", key: SymmetricKey(size: .bits256))
            #expect(matcher.matches("token"))
            #expect(matcher.matches(Substring("xtoken").dropFirst()))
            #expect(!matcher.matches("token "))
            #expect(!matcher.matches("toke"))
        }
    }
}
