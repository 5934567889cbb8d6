import Foundation
import LeaseholdPostgres
import LeaseholdTesting
import Testing

extension SystemTests {
    /// `leasehold dlq list --user` and `--chat`: an on-call person asked about one user finds that
    /// user's dead letters, whatever their kind, and a malformed id is refused with a clear error.
    @Suite("dlq list by user and chat")
    struct DeadLetterSubjectCommandTests {
        private func insert(_ stack: ProcessStack, key: String, kind: String = "booking", payload: String)
            async throws -> Int64
        {
            try await stack.postgres.query(
                """
                INSERT INTO dead_letters (message_key, stream, entry_id, kind, payload, attempts, last_error, first_seen_at)
                VALUES (\(key), \(stack.stream("bookings")), \(UUID().uuidString), \(kind), \(Array(payload.utf8)), 3,
                        'slot 7 does not exist', now())
                RETURNING id
                """
            ).single().decode(Int64.self, at: 0)
        }

        @Test func listFindsOneUsersAndOneChatsLettersAndRefusesABadId() async throws {
            let stack = try await ProcessStack.start(ingress: 0, workers: 0)
            let mine = try await insert(
                stack, key: "tg:1", payload: #"{"action":"book","user_id":42,"chat_id":4200,"slot_id":7}"#)
            _ = try await insert(
                stack, key: "tg:2", payload: #"{"action":"book","user_id":43,"chat_id":4300,"slot_id":7}"#)
            _ = try await insert(stack, key: "tg:3", payload: "not json")

            let byUser = try await LeaseholdExecutable.run(
                ["dlq", "list", "--user", "42", "--json"], in: stack.directory, environment: stack.environment)
            #expect(byUser.status == 0, "\(byUser.output)")
            let json = try #require(byUser.output.range(of: "[").map { String(byUser.output[$0.lowerBound...]) })
            let letters = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
            #expect(letters.map { ($0["id"] as? NSNumber)?.int64Value } == [mine])
            #expect((letters.first?["user_id"] as? NSNumber)?.int64Value == 42)
            #expect((letters.first?["chat_id"] as? NSNumber)?.int64Value == 4200)

            let byChat = try await LeaseholdExecutable.run(
                ["dlq", "list", "--chat", "4300"], in: stack.directory, environment: stack.environment)
            #expect(byChat.status == 0, "\(byChat.output)")
            #expect(byChat.output.contains("tg:2") && !byChat.output.contains("tg:1"), "\(byChat.output)")
            #expect(byChat.output.contains("USER") && byChat.output.contains(" 43 "), "\(byChat.output)")

            let bad = try await LeaseholdExecutable.run(
                ["dlq", "list", "--user", "abc"], in: stack.directory, environment: stack.environment)
            #expect(bad.status != 0)
            #expect(bad.output.contains("--user"), "\(bad.output)")
            #expect(
                try await stack.postgres.query("SELECT count(*) FROM dead_letters WHERE status = 'dead'").single()
                    .decode(Int64.self, at: 0) == 3)
            await stack.shutdown()
        }
    }
}
