import LeaseholdNotifier
import Testing

extension UnitTests {
    /// The token is a secret: validated without being echoed, never printed, scrubbed from any text.
    @Suite("Bot token")
    struct BotTokenTests {
        @Test func aWellFormedTokenIsAcceptedAndNeverPrinted() throws {
            let token = try BotToken("123456789:AAE-secret_part_0123456789abcdefghij")
            #expect("\(token)" == "***")
            #expect(String(reflecting: token) == "BotToken(***)")
        }

        @Test(arguments: [
            "", "   ", "no-colon", ":secret", "123:", "12a:secret", "123:se/cret", "123:sec ret", "123:a?b=c",
        ])
        func malformedTokensAreRefusedWithoutEchoingThem(text: String) {
            #expect(throws: BotToken.ValidationError.self) { try BotToken(text) }
            do {
                _ = try BotToken(text)
            } catch {
                if !text.trimmingCharacters(in: .whitespaces).isEmpty {
                    #expect(!error.description.contains(text))
                }
            }
        }

        @Test func redactionRemovesTheTokenAndItsSecretHalf() throws {
            let token = try BotToken("123456789:AAE-secret_part_0123456789abcdefghij")
            let text =
                "GET https://api.telegram.org/bot123456789:AAE-secret_part_0123456789abcdefghij/sendMessage failed; "
                + "key AAE-secret_part_0123456789abcdefghij"
            let redacted = token.redact(text)
            #expect(!redacted.contains("AAE-secret_part"))
            #expect(redacted == "GET https://api.telegram.org/bot***/sendMessage failed; key ***")
        }
    }
}
