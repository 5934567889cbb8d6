import Foundation
import LeaseholdPostgres
import LeaseholdWire

/// The booking rules that are configuration, not law.
public struct BookingRules: Sendable, Equatable {
    /// A user may hold at most one active interview (`LEASEHOLD_ONE_BOOKING_PER_USER`).
    public var onePerUser: Bool
    /// Create unknown Telegram users on their first callback (API users must exist).
    public var createTelegramUsers: Bool

    public init(onePerUser: Bool = true, createTelegramUsers: Bool = true) {
        self.onePerUser = onePerUser
        self.createTelegramUsers = createTelegramUsers
    }
}

/// What one booking transaction decided.
public struct BookingResult: Sendable, Equatable {
    public var outcome: BookingOutcome
    /// The interview booked, moved or cancelled, when there is one.
    public var interviewID: Int64?
    /// `true` when the message key was already in the inbox: nothing changed this time, and
    /// `outcome` is the one recorded by the first delivery.
    public var duplicate: Bool

    public init(outcome: BookingOutcome, interviewID: Int64? = nil, duplicate: Bool = false) {
        self.outcome = outcome
        self.interviewID = interviewID
        self.duplicate = duplicate
    }
}

/// The booking transaction: the fix of the double-booking incident (two users confirmed for the
/// same slot at the same moment, by check-then-insert without a row lock) as architecture.
///
/// The transaction is the PostgreSQL function `leasehold_book` (Migrations/0007_booking_function.sql,
/// redefined by 0009_booking_releases_slot_lock_unless_booked.sql), called in one statement, so a
/// booking costs one round trip and the slot's row lock is held only while the function runs
/// inside the server — and through COMMIT only by a request that books the slot: any other
/// answer is decided in a subtransaction that is rolled back, releasing the lock, so the requests
/// queued behind a booking do not take turns flushing the WAL. It does, in this order:
///
/// 1. **Inbox first.** `INSERT … ON CONFLICT DO NOTHING` of the message key and the request's
///    digest. A key already there means this message was processed: return its recorded outcome
///    (and interview) and change nothing; or, when the digest differs, the key was reused for
///    another request: answer `request_id_reused` and change nothing.
/// 2. **Locks in a fixed order** — the user row, then every slot involved by ascending id, then
///    the interview — each with `SELECT … FOR UPDATE`. Two transactions for the same slot queue on
///    the slot row: the second sees the first's committed interview and answers `slot_taken`
///    instead of tripping the unique index. Two reverse reschedules (A→B, B→A) lock {A, B} in
///    the same order, so they cannot deadlock.
/// 3. **Decide and write** the interview change, the inbox outcome, and an outbox row with the
///    bot's reply when the user has a chat.
///
/// The partial unique index `interviews_one_active_per_slot` stays as the last line of defence;
/// with the slot lock it is never violated.
public struct BookingTransaction: Sendable {
    public let rules: BookingRules

    public init(rules: BookingRules = BookingRules()) {
        self.rules = rules
    }

    /// The bot's reply for every outcome, as the JSON object the function reads them from.
    public static let replies: String = {
        let texts = Dictionary(uniqueKeysWithValues: BookingOutcome.allCases.map { ($0.rawValue, $0.reply) })
        let data = (try? JSONSerialization.data(withJSONObject: texts, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }()

    /// Applies `request`, identified by `key`, on `connection` (a connection or a client): one
    /// statement, which is its own transaction when the connection is not inside one, or part of
    /// the caller's. It runs as the session's prepared statement `leasehold_book`: the server
    /// parses and plans the call once per connection, not once per booking.
    public func run(
        _ request: BookingRequest, key: String, stream: String? = nil, entryID: String? = nil,
        on connection: some PostgresExecutor
    ) async throws -> BookingResult {
        try Self.result(
            of: await connection.query(
                statement(request, key: key, stream: stream, entryID: entryID), preparedAs: "leasehold_book"))
    }

    /// Books a throwaway slot for a throwaway user on `connection`, then rolls everything back:
    /// nothing is left behind but the session's prepared statement `leasehold_book`, and the
    /// function compiled and its statements planned in that backend. A backend's first booking
    /// otherwise pays for all of that (about 6 ms of server CPU, ten times a booking's): a worker
    /// whose 16 connections each paid it under its first burst held that burst for about a
    /// tenth of a second. The worker runs this on each connection it opens at startup.
    ///
    /// The user and the slot are made in the same transaction, under random negative ids (users
    /// and slots never have those: Telegram ids are positive, slot ids come from an identity), so
    /// concurrent warm-ups do not wait on each other; the booking runs twice, the second time as
    /// a duplicate, which plans the inbox's lookup too. The only lasting trace is one value each
    /// of `interviews`' and `outbox`' identities, spent by the rolled-back inserts.
    public func warmUp(on connection: PostgresConnection) async throws {
        let user = Int64.random(in: Int64.min / 2 ... -1)
        let slot = Int64.random(in: Int64.min / 2 ... -1)
        try await inRolledBackTransaction(on: connection) { connection in
            try await bookThrowaway(user: user, slot: slot, on: connection)
        }
    }

    /// ``warmUp(on:)``'s transaction, up to its rollback.
    private func bookThrowaway(user: Int64, slot: Int64, on connection: PostgresConnection) async throws {
        let interviewer = "leasehold warm-up \(slot)"
        try await connection.execute(
            "INSERT INTO users (id, telegram_chat_id, name) VALUES (\(user), \(user), 'leasehold warm-up')")
        try await connection.execute(
            """
            INSERT INTO time_slots (id, starts_at, ends_at, interviewer)
            VALUES (\(slot), now(), now() + interval '1 minute', \(interviewer))
            """)
        let request = BookingRequest(action: .book, userID: user, slotID: slot, chatID: user)
        _ = try await run(request, key: "warm-up:\(slot)", on: connection)
        _ = try await run(request, key: "warm-up:\(slot)", on: connection)
    }

    /// The one statement: `leasehold_book` with the request, the key and the rules. Its text never
    /// changes and the replies are the same bytes every time, so both are made once
    /// (``interpolatedStatement(_:key:stream:entryID:)`` builds the same query the plain way; the
    /// tests compare them): the worker builds one per message, and rebuilding the same text
    /// and bytes each time is work for nothing.
    func statement(_ request: BookingRequest, key: String, stream: String?, entryID: String?) -> PostgresQuery {
        func bind<Value: PostgresEncodable>(_ value: Value?) -> PostgresBind {
            value.map(\.postgresBind) ?? .null(type: Value.postgresType)
        }
        return PostgresQuery(
            unsafeSQL: Self.statementSQL,
            binds: [
                key.postgresBind, request.action.rawValue.postgresBind, request.userID.postgresBind,
                bind(request.slotID), bind(request.interviewID), bind(request.chatID),
                request.canonicalForm.postgresBind, bind(stream), bind(entryID), rules.onePerUser.postgresBind,
                rules.createTelegramUsers.postgresBind, Self.repliesBind,
            ])
    }

    /// The text of ``statement(_:key:stream:entryID:)``, from the interpolated form.
    static let statementSQL = BookingTransaction().interpolatedStatement(
        BookingRequest(action: .book, userID: 1), key: "", stream: nil, entryID: nil
    ).sql

    /// ``replies`` as its bind parameter.
    static let repliesBind = replies.postgresBind

    /// ``statement(_:key:stream:entryID:)`` written as an interpolation: the reference it is
    /// checked against.
    func interpolatedStatement(_ request: BookingRequest, key: String, stream: String?, entryID: String?)
        -> PostgresQuery
    {
        """
        SELECT o_outcome, o_interview_id, o_duplicate FROM leasehold_book(
            \(key), \(request.action.rawValue), \(request.userID), \(request.slotID), \(request.interviewID),
            \(request.chatID), \(request.canonicalForm), \(stream), \(entryID), \(rules.onePerUser),
            \(rules.createTelegramUsers), \(Self.replies)::jsonb)
        """
    }

    static func result(of rows: PostgresRows) throws -> BookingResult {
        let (outcome, interviewID, duplicate) = try rows.single().decode(String.self, Int64?.self, Bool.self)
        return BookingResult(
            outcome: BookingOutcome(rawValue: outcome) ?? .rejected, interviewID: interviewID, duplicate: duplicate)
    }
}

/// Runs `body` in a transaction on `connection` and always rolls it back: a warm-up
/// (``BookingTransaction/warmUp(on:)``, ``PaymentTransaction/warmUp(on:)``) leaves only what a
/// rollback keeps — the session's prepared statements and the backend's compiled functions and
/// plans. Throws what `body`, BEGIN or the rollback threw.
func inRolledBackTransaction(
    on connection: PostgresConnection, _ body: (PostgresConnection) async throws -> Void
) async throws {
    do throws(PostgresTransactionError) {
        try await connection.withTransaction { connection in
            try await body(connection)
            throw RollBack()
        }
    } catch {
        guard error.bodyError is RollBack, error.rollbackError == nil else { throw error }
    }
}

/// Ends ``inRolledBackTransaction(on:_:)``'s body with a rollback.
private struct RollBack: Error {}
