import Testing

@testable import LeaseholdIngress

extension UnitTests {
    /// The secret comparison behind `TELEGRAM_WEBHOOK_SECRET` and `LEASEHOLD_API_TOKEN`: only the
    /// exact value matches. The first case (the secret followed by 256 more bytes) was accepted by an
    /// earlier comparison that folded the length difference into one byte.
    @Suite("Secret matcher")
    struct SecretMatcherTests {
        static let secret = "test-telegram-secret"

        static let forgeries: [(String, String)] = [
            ("secret + 256 bytes", secret + String(repeating: "x", count: 256)),
            ("secret + 256 NUL bytes", secret + String(repeating: "\u{0}", count: 256)),
            ("secret + 1 byte", secret + "x"),
            ("a prefix", String(secret.dropLast())),
            ("empty", ""),
            ("non-ASCII look-alike", "test-telegram-secrét"),
            ("one byte changed", "test-telegram-secreT"),
            ("secret with a trailing space", secret + " "),
        ]

        @Test(arguments: forgeries.map(\.0))
        func forgeryIsRefused(_ name: String) {
            let presented = Self.forgeries.first { $0.0 == name }!.1
            #expect(!SecretMatcher(secret: Self.secret).matches(presented))
        }

        @Test func theExactSecretMatches() {
            let matcher = SecretMatcher(secret: Self.secret)
            #expect(matcher.matches(Self.secret))
            #expect(matcher.matches(Substring(Self.secret)))
            #expect(SecretMatcher(secret: "sécret-ключ").matches("sécret-ключ"))
        }

        @Test func anEmptySecretMatchesNothing() {
            let matcher = SecretMatcher(secret: "")
            #expect(!matcher.matches(""))
            #expect(!matcher.matches("anything"))
        }
    }
}

extension UnitTests {
    /// The request digest ingress stores beside a request ID is the SHA-256 in lowercase hex.
    @Suite("Request digest")
    struct RequestDigestTests {
        @Test func digestsAreLowercaseHexOfSHA256() {
            let digest: [UInt8] = [0xba, 0x78, 0x16, 0xbf, 0x00, 0x0f, 0xf0, 0xad]
            #expect(BookingsController.hex(digest) == "ba7816bf000ff0ad")
            #expect(BookingsController.hex([UInt8]()) == "")
        }
    }
}
