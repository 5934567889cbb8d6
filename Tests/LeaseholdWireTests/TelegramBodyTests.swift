import Foundation
import Testing

@testable import LeaseholdWire

extension UnitTests {
    /// `POST /telegram/webhook` bodies are read by ``TelegramUpdate/init(plain:)`` when it can, by
    /// `JSONDecoder` when it gives up: the decision (or the rejection, reason included) must be the
    /// one the full way gives, for every body.
    @Suite("Telegram body")
    struct TelegramBodyTests {
        /// A callback update as Telegram sends it: the message the button was under, with its
        /// keyboard, entities and text, and the user's details.
        static func update(
            updateID: String = "918273645", queryID: String = #""4382bfdwdsb323b2d9""#, from: String = "555000111",
            chat: String = "555000111", message: String? = nil, data: String? = #""book:42""#
        ) -> String {
            let defaultMessage = """
                {"message_id": 1024, "from": {"id": 7000000001, "is_bot": true, "first_name": "Slots bot",
                 "username": "slots_bot"}, "chat": {"id": \(chat), "first_name": "Анна", "type": "private"},
                 "date": 1764300000, "text": "Free slots on \\"Monday\\" \\u2014 pick one",
                 "entities": [{"offset": 0, "length": 10, "type": "bold"}],
                 "reply_markup": {"inline_keyboard": [[{"text": "10:00", "callback_data": "book:42"},
                 {"text": "11:00", "callback_data": "book:43"}], [{"text": "Cancel", "callback_data": "cancel:9"}]]}}
                """
            let dataMember = data.map { #", "data": \#($0)"# } ?? ""
            return """
                {"update_id": \(updateID),
                 "callback_query": {"id": \(queryID), "from": {"id": \(from), "is_bot": false, "first_name": "Анна",
                  "language_code": "ru", "is_premium": true}, "message": \(message ?? defaultMessage),
                  "chat_instance": "-8123456789012345678"\(dataMember)}}
                """
        }

        /// Bodies the plain reader answers itself.
        static let plainBodies: [String] = [
            update(),
            update(data: #""cancel:7""#),
            update(data: #""reschedule:7:43""#),
            update(from: "-17", chat: "-1001234567890"),
            update(updateID: "999999999999999999"),
            update(message: "null"),
            update(message: #"{"message_id": 3, "chat": {"id": 12}, "date": 1.5e9, "text": null}"#),
            update(data: "null"),
            update(data: nil),
            update(data: #""book:0""#),
            update(data: #""book:-1""#),
            update(data: #""book:abc""#),
            update(data: #""записаться""#),
            update(queryID: #""""#),
            // Not a callback: ignored.
            #"{"update_id": 7, "message": {"message_id": 1, "chat": {"id": 5}, "text": "/start"}}"#,
            #"{"update_id": 7, "callback_query": null}"#,
            #"{"update_id": 7}"#,
            // Whitespace everywhere, members in another order.
            " \r\n{ \"callback_query\" :\t{ \"data\" : \"book:1\" , \"from\" : { \"id\" : 2 } , \"id\" : \"q\" } ,"
                + " \"update_id\" : 3 } \n",
            // Inline-mode callbacks have no message: the chat is the user.
            #"{"update_id": 8, "callback_query": {"id": "q", "from": {"id": 2}, "inline_message_id": "AAA", "data": "book:5"}}"#,
        ]

        /// Bodies it hands to `JSONDecoder`, whose answer or error is then the one given.
        static let otherBodies: [String] = [
            update(updateID: "1.0"), update(updateID: "1e3"), update(updateID: "9223372036854775807"),
            update(updateID: "9223372036854775808"), update(updateID: #""1""#), update(updateID: "null"),
            update(updateID: "-0.0"), update(updateID: "-5"), update(updateID: "-9223372036854775808"),
            update(queryID: "5"), update(queryID: #""a\u0062""#), update(queryID: "null"),
            update(from: #""1""#), update(from: "1.5"), update(from: "null"),
            update(chat: "1e2"), update(chat: #""12""#),
            update(message: "{}"), update(message: #"{"message_id": 1}"#), update(message: #"{"chat": {"id": 1}}"#),
            update(message: "[]"), update(message: "5"),
            update(data: "5"), update(data: #""book:\u0034\u0032""#), update(data: "[]"),
            #"{"callback_query": {"id": "q", "from": {"id": 2}, "data": "book:1"}}"#,
            #"{"update\u005fid": 3, "callback_query": {"id": "q", "from": {"id": 2}, "data": "book:1"}}"#,
            #"{"update_id": 3, "callback_query": {"id": "q", "data": "book:1"}}"#,
            #"{"update_id": 3, "callback_query": {"id": "q", "from": {}, "data": "book:1"}}"#,
            #"{"update_id": 3, "callback_query": []}"#,
            #"{"update_id": 3, "callback_query": "x"}"#,
            #"[]"#, #""update""#, "5", "null", "{}",
        ]

        /// Bodies the strict check refuses before either reader sees them (the plain reader assumes
        /// a body that passed it).
        static let refusedBodies: [String] = [
            #"{"update_id": 3, "update_id": 4}"#,
            #"{"update_id": 3, "callback_query": {"id": "q\u0000", "from": {"id": 2}}}"#,
            #"{"update_id": 3,}"#, "", "{", #"{"update_id": 1e400}"#,
        ]

        @Test("a plain body is read without JSONDecoder, with the decoder's answer", arguments: plainBodies)
        func plainBodyAnswersAsTheDecoder(_ body: String) throws {
            #expect(TelegramUpdate(plain: Array(body.utf8)) != nil, "the plain reader answers")
            #expect(
                BodyDamage.result(IngressBodies.telegram, body)
                    == BodyDamage.result(IngressBodies.telegramDecodedFully, body))
        }

        @Test("any other body goes to JSONDecoder and gets its answer or error", arguments: otherBodies)
        func otherBodyGetsTheDecodersAnswer(_ body: String) throws {
            #expect(TelegramUpdate(plain: Array(body.utf8)) == nil, "the plain reader gives up")
            #expect(
                BodyDamage.result(IngressBodies.telegram, body)
                    == BodyDamage.result(IngressBodies.telegramDecodedFully, body))
        }

        @Test("a body the strict check refuses gets its rejection either way", arguments: refusedBodies)
        func refusedBodyGetsTheStrictRejection(_ body: String) throws {
            let fast = BodyDamage.result(IngressBodies.telegram, body)
            #expect(fast == BodyDamage.result(IngressBodies.telegramDecodedFully, body))
            guard case .failure(let rejection) = fast else {
                Issue.record("accepted: \(fast)")
                return
            }
            #expect(rejection.status == 400)
        }

        @Test(
            "a negative update_id is refused (422) both ways, as Telegram's ids are positive",
            arguments: ["-1", "-5", "-918273645", "-9223372036854775808"])
        func negativeUpdateIDIsRefused(_ updateID: String) {
            for body in [Self.update(updateID: updateID), #"{"update_id": \#(updateID)}"#] {
                for result in [
                    BodyDamage.result(IngressBodies.telegram, body),
                    BodyDamage.result(IngressBodies.telegramDecodedFully, body),
                ] {
                    guard case .failure(let rejection) = result else {
                        Issue.record("accepted: \(result)")
                        continue
                    }
                    #expect(rejection.status == 422)
                    #expect(rejection.reason.contains("update_id"), "\(rejection.reason)")
                }
            }
        }

        @Test("the plain reader reads the fields the decoder reads")
        func readsTheFields() throws {
            let decision = try IngressBodies.telegram(Data(Self.update(from: "31", chat: "-100200").utf8))
            guard case .enqueue(let updateID, let queryID, let booking) = decision else {
                Issue.record("not enqueued: \(decision)")
                return
            }
            #expect(updateID == 918_273_645 && queryID == "4382bfdwdsb323b2d9")
            #expect(booking.userID == 31 && booking.chatID == -100_200 && booking.slotID == 42)
        }

        /// Thousands of damaged updates (fixed seed): bytes dropped, replaced by JSON's own
        /// punctuation, digits and letters, or duplicated. Whatever each becomes, both ways agree.
        @Test("damaged updates get the same answer both ways")
        func damagedUpdatesAgree() {
            var plainAnswers = 0
            for body in BodyDamage.damaged(Self.plainBodies, seed: 0x7e1e_67a4) {
                if TelegramUpdate(plain: Array(body.utf8)) != nil { plainAnswers += 1 }
                let fast = BodyDamage.result(IngressBodies.telegram, body)
                let full = BodyDamage.result(IngressBodies.telegramDecodedFully, body)
                #expect(fast == full, "\(body)")
            }
            #expect(plainAnswers > 100, "the damage left many bodies the plain reader answers")
        }
    }
}
