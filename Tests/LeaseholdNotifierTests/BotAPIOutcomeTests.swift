import LeaseholdNotifier
import Testing

extension UnitTests {
    /// How the Bot API's answers are classified: what is final, what is retried, what pauses the bot.
    @Suite("Bot API answers")
    struct BotAPIOutcomeTests {
        private func classify(_ status: Int, _ body: String, method: String = "sendMessage", header: String? = nil)
            -> BotAPIOutcome
        {
            BotAPIOutcome.classify(httpStatus: status, body: Array(body.utf8), method: method, retryAfterHeader: header)
        }

        @Test func aSentMessageCarriesItsMessageID() {
            let outcome = classify(200, #"{"ok":true,"result":{"message_id":4711,"chat":{"id":5},"text":"hi"}}"#)
            #expect(outcome == .delivered(messageID: 4711))
        }

        @Test func aCallWhoseResultIsTrueIsDeliveredWithoutMessageID() {
            #expect(
                classify(200, #"{"ok":true,"result":true}"#, method: "answerCallbackQuery")
                    == .delivered(messageID: nil))
        }

        @Test func tooManyRequestsUsesRetryAfter() {
            let outcome = classify(
                429,
                #"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#
            )
            #expect(outcome == .rateLimited(retryAfter: .seconds(7), description: "Too Many Requests: retry after 7"))
        }

        @Test func tooManyRequestsWithoutParametersFallsBackToTheHeaderThenOneSecond() {
            #expect(
                classify(429, #"{"ok":false,"error_code":429,"description":"x"}"#, header: "3")
                    == .rateLimited(retryAfter: .seconds(3), description: "x"))
            #expect(
                classify(429, #"{"ok":false,"error_code":429,"description":"x"}"#)
                    == .rateLimited(retryAfter: .seconds(1), description: "x"))
        }

        @Test func anAbsurdRetryAfterIsCapped() {
            let outcome = classify(
                429, #"{"ok":false,"error_code":429,"description":"x","parameters":{"retry_after":999999999}}"#)
            #expect(outcome == .rateLimited(retryAfter: BotAPIOutcome.maximumRetryAfter, description: "x"))
        }

        @Test(arguments: [
            (403, "Forbidden: bot was blocked by the user"), (400, "Bad Request: chat not found"),
            (400, "Bad Request: message is too long"), (403, "Forbidden: bot was kicked from the group chat"),
            (409, "Conflict: something"),
        ])
        func clientErrorsAreFinal(code: Int, description: String) {
            let outcome = classify(code, #"{"ok":false,"error_code":\#(code),"description":"\#(description)"}"#)
            #expect(outcome == .rejected(code: code, description: description))
        }

        @Test(arguments: [500, 502, 503, 504])
        func serverErrorsAreRetried(code: Int) {
            let outcome = classify(code, #"{"ok":false,"error_code":\#(code),"description":"Internal Server Error"}"#)
            #expect(outcome == .retryable(code: code, description: "Internal Server Error"))
        }

        @Test func anAnswerThatIsNotTheBotAPIsIsNeverFinal() {
            // A proxy's error page says nothing about the chat: retry, even for a 4xx.
            guard case .retryable(let code, _) = classify(403, "<html>Forbidden by proxy</html>") else {
                Issue.record("a non-JSON 403 must be retryable")
                return
            }
            #expect(code == 403)
            guard case .retryable = classify(200, "not json") else {
                Issue.record("a 200 without the envelope must be retryable")
                return
            }
        }

        @Test(arguments: [401, 404])
        func aRejectedTokenIsTheBotsProblemNotTheRows(code: Int) {
            let outcome = classify(code, #"{"ok":false,"error_code":\#(code),"description":"Unauthorized"}"#)
            #expect(outcome == .botMisconfigured(code: code, description: "Unauthorized"))
        }

        @Test func editingToTheSameTextCountsAsDelivered() {
            let body =
                #"{"ok":false,"error_code":400,"description":"Bad Request: message is not modified: specified new message content and reply markup are exactly the same"}"#
            #expect(classify(400, body, method: "editMessageText") == .delivered(messageID: nil))
            // …but only for edits.
            guard case .rejected = classify(400, body, method: "sendMessage") else {
                Issue.record("not an edit: a 400 is final")
                return
            }
        }

        @Test func aMigratedGroupNamesItsNewChat() {
            let outcome = classify(
                400,
                #"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001234}}"#
            )
            guard case .rejected(400, let description) = outcome else {
                Issue.record("expected a final 400, got \(outcome)")
                return
            }
            #expect(description.contains("-1001234"))
        }
    }
}
