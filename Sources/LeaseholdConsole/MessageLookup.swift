import Foundation
import LeaseholdPostgres

/// What happened to one message, by its inbox key (`api:<request_id>`, `tg:<update_id>`,
/// `yk:<event>:<payment id>`): its inbox row (processed, and with which outcome), the bot replies
/// it wrote to the outbox and their delivery state, and any dead letter under the same key.
public struct MessageLookup: Sendable {
    /// The inbox row.
    public struct InboxRow: Sendable, Equatable {
        public var kind: String
        public var outcome: String
        public var stream: String?
        public var entryID: String?
        public var processedAt: Date
        public var interviewID: Int64?
    }

    /// One bot reply.
    public struct OutboxRow: Sendable, Equatable {
        public var id: Int64
        public var chatID: Int64?
        public var method: String
        public var status: String
        public var attempts: Int32
        public var lastError: String?
        public var telegramMessageID: Int64?
        public var createdAt: Date
        public var sentAt: Date?
        /// The reply's text (the `text` of its payload), when it has one.
        public var text: String?
    }

    public var key: String
    public var inbox: InboxRow?
    public var outbox: [OutboxRow]
    public var deadLetterIDs: [Int64]

    /// The inbox key an operator's input names: a key as it is (`tg:…`, `api:…`, `yk:…`), a bare
    /// number as a Telegram update id, anything else as an API `request_id`.
    public static func key(for input: String) -> String {
        let trimmed = input.trimmingCharacters(in: .whitespaces)
        if ["tg:", "api:", "yk:"].contains(where: trimmed.hasPrefix) { return trimmed }
        if Int64(trimmed) != nil { return "tg:\(trimmed)" }
        return "api:\(trimmed)"
    }

    /// Reads everything about `key`.
    public static func load(_ key: String, postgres: PostgresClient) async throws -> MessageLookup {
        let inbox = try await postgres.query(
            """
            SELECT kind, outcome, stream, entry_id, processed_at, interview_id FROM inbox WHERE message_key = \(key)
            """
        ).first.map { row in
            let (kind, outcome, stream, entry, at, interview) = try row.decode(
                String.self, String.self, String?.self, String?.self, Date.self, Int64?.self)
            return InboxRow(
                kind: kind, outcome: outcome, stream: stream, entryID: entry, processedAt: at, interviewID: interview)
        }
        let outbox = try await postgres.query(
            """
            SELECT id, chat_id, method, status, attempts, last_error, telegram_message_id, created_at, sent_at,
                   payload ->> 'text'
            FROM outbox WHERE message_key = \(key) ORDER BY id
            """
        ).map { row in
            let (id, chat, method, status, attempts, error, messageID, created, sent, text) = try row.decode(
                Int64.self, Int64?.self, String.self, String.self, Int32.self, String?.self, Int64?.self, Date.self,
                Date?.self, String?.self)
            return OutboxRow(
                id: id, chatID: chat, method: method, status: status, attempts: attempts, lastError: error,
                telegramMessageID: messageID, createdAt: created, sentAt: sent, text: text)
        }
        let letters = try await postgres.query(
            "SELECT id FROM dead_letters WHERE message_key = \(key) ORDER BY id"
        ).map { try $0.decode(Int64.self, at: 0) }
        return MessageLookup(key: key, inbox: inbox, outbox: outbox, deadLetterIDs: letters)
    }
}
