import Foundation
import LeaseholdPostgres

/// The console's audit trail (`console_actions`): who replayed, purged or revealed which dead letters
/// (or paused and resumed which streams), when.
public struct ConsoleAuditLog: Sendable {
    /// One recorded action.
    public struct Action: Sendable, Equatable {
        public var id: Int64
        public var at: Date
        public var actor: String
        public var action: String
        public var scope: String
        public var deadLetterIDs: [Int64]
    }

    public init() {}

    /// Records an action and returns its id.
    public func record(
        actor: String, action: String, scope: String, deadLetterIDs: [Int64], postgres: PostgresClient
    ) async throws -> Int64 {
        try await postgres.query(
            """
            INSERT INTO console_actions (actor, action, scope, dead_letter_ids)
            VALUES (\(actor), \(action), \(scope), \(PostgresInt8Array(deadLetterIDs))) RETURNING id
            """
        ).single().decode(Int64.self, at: 0)
    }

    static let columns = "id, at, actor, action, scope, dead_letter_ids::text"

    static func action(_ row: PostgresRow) throws -> Action {
        let (id, at, actor, action, scope, ids) = try row.decode(
            Int64.self, Date.self, String.self, String.self, String.self, String.self)
        return Action(
            id: id, at: at, actor: actor, action: action, scope: scope,
            deadLetterIDs: ids.trimmingCharacters(in: CharacterSet(charactersIn: "{}")).split(separator: ",")
                .compactMap { Int64($0) })
    }

    /// The latest actions, newest first.
    public func recent(limit: Int = 20, postgres: PostgresClient) async throws -> [Action] {
        try await postgres.query(
            "SELECT \(unescaped: Self.columns) FROM console_actions ORDER BY at DESC, id DESC LIMIT \(limit)"
        ).map(Self.action)
    }

    /// One action.
    public func find(_ id: Int64, postgres: PostgresClient) async throws -> Action? {
        try await postgres.query("SELECT \(unescaped: Self.columns) FROM console_actions WHERE id = \(id)")
            .first.map(Self.action)
    }

    /// The actions that touched dead letter `id`, newest first.
    public func actions(onDeadLetter id: Int64, postgres: PostgresClient) async throws -> [Action] {
        try await postgres.query(
            """
            SELECT \(unescaped: Self.columns) FROM console_actions
            WHERE dead_letter_ids @> ARRAY[\(id)]::bigint[] ORDER BY at DESC, id DESC
            """
        ).map(Self.action)
    }
}
