import LeaseholdPostgres

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
/// Runs inside one PostgreSQL transaction (the caller's `withTransaction`), in this order:
///
/// 1. **Inbox first.** `INSERT … ON CONFLICT DO NOTHING` of the message key and the request's
///    digest. A key already there means this message was processed: return its recorded outcome
///    (and interview) and change nothing; or, when the digest differs, the key was reused for
///    another request: answer `request_id_reused` and change nothing. A
///    concurrent duplicate waits on the first one's uncommitted row and then sees the conflict,
///    so duplicates never raise `duplicate key` errors.
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

    /// Applies `request`, identified by `key`, on `connection`, which must be inside a transaction.
    public func run(
        _ request: BookingRequest, key: String, stream: String? = nil, entryID: String? = nil,
        on connection: PostgresConnection
    ) throws -> BookingResult {
        // 1. Inbox, with the request's digest.
        let canonical = request.canonicalForm
        let inserted = try connection.execute(
            """
            INSERT INTO inbox (message_key, kind, outcome, stream, entry_id, request_digest)
            VALUES (\(key), \(BookingRequest.kind), 'pending', \(stream), \(entryID),
                    sha256(convert_to(\(canonical), 'UTF8')))
            ON CONFLICT (message_key) DO NOTHING
            """)
        if inserted == 0 {
            // Seen before. The same request again (a retry, a redelivery) gets the recorded outcome
            // whole; a different request under the same key is refused and changes nothing.
            let row = try connection.query(
                """
                SELECT outcome, interview_id,
                       request_digest IS NOT NULL AND request_digest <> sha256(convert_to(\(canonical), 'UTF8'))
                FROM inbox WHERE message_key = \(key)
                """
            ).single()
            let (outcome, interviewID, reused) = try row.decode(String.self, Int64?.self, Bool.self)
            if reused { return BookingResult(outcome: .requestIDReused, duplicate: true) }
            return BookingResult(
                outcome: BookingOutcome(rawValue: outcome) ?? .rejected, interviewID: interviewID, duplicate: true)
        }

        // 2a. The user.
        guard let user = try lockUser(request, on: connection) else {
            return try finish(BookingResult(outcome: .rejected), key: key, chatID: nil, on: connection)
        }

        let result: BookingResult
        switch request.action {
        case .book:
            result = try book(request, key: key, on: connection)
        case .cancel:
            result = try cancel(request, on: connection)
        case .reschedule:
            result = try reschedule(request, key: key, on: connection)
        }
        return try finish(result, key: key, chatID: user.chatID, on: connection)
    }

    /// The locked user: where replies go (`nil` when the user has no chat).
    private struct LockedUser {
        var chatID: Int64?
    }

    /// Locks the user row (creating a Telegram user on first contact); `nil` when the user is unknown.
    private func lockUser(_ request: BookingRequest, on connection: PostgresConnection) throws -> LockedUser? {
        if request.chatID != nil && rules.createTelegramUsers {
            try connection.execute(
                """
                INSERT INTO users (id, telegram_chat_id) VALUES (\(request.userID), \(request.chatID))
                ON CONFLICT (id) DO NOTHING
                """)
        }
        let rows = try connection.query(
            "SELECT telegram_chat_id FROM users WHERE id = \(request.userID) FOR UPDATE")
        guard let row = rows.first else { return nil }
        return LockedUser(chatID: try request.chatID ?? row.decode(Int64?.self, at: 0))
    }

    /// Locks the given slots by ascending id; returns which exist and are open.
    private func lockSlots(_ ids: [Int64], on connection: PostgresConnection) throws -> [Int64: Bool] {
        let ordered = Array(Set(ids)).sorted()
        var open: [Int64: Bool] = [:]
        for row in try connection.query(
            "SELECT id, is_open FROM time_slots WHERE id = ANY(\(PostgresInt8Array(ordered))) ORDER BY id FOR UPDATE")
        {
            let (id, isOpen) = try row.decode(Int64.self, Bool.self)
            open[id] = isOpen
        }
        return open
    }

    private func slotIsTaken(_ slotID: Int64, on connection: PostgresConnection) throws -> Bool {
        try !connection.query(
            "SELECT 1 FROM interviews WHERE time_slot_id = \(slotID) AND status = 'active'"
        ).isEmpty
    }

    private func book(_ request: BookingRequest, key: String, on connection: PostgresConnection) throws
        -> BookingResult
    {
        guard let slotID = request.slotID else { return BookingResult(outcome: .rejected) }
        let slots = try lockSlots([slotID], on: connection)
        guard let isOpen = slots[slotID] else { return BookingResult(outcome: .unknownSlot) }
        guard isOpen else { return BookingResult(outcome: .rejected) }
        if try slotIsTaken(slotID, on: connection) { return BookingResult(outcome: .slotTaken) }
        if rules.onePerUser {
            let active = try connection.query(
                "SELECT id FROM interviews WHERE user_id = \(request.userID) AND status = 'active' LIMIT 1")
            if let existing = active.first {
                return BookingResult(outcome: .alreadyBooked, interviewID: try existing.decode(Int64.self, at: 0))
            }
        }
        let interviewID = try connection.query(
            """
            INSERT INTO interviews (user_id, time_slot_id, message_key)
            VALUES (\(request.userID), \(slotID), \(key)) RETURNING id
            """
        ).single().decode(Int64.self, at: 0)
        return BookingResult(outcome: .booked, interviewID: interviewID)
    }

    /// The interview's current slot, owner and status, read before locking its slot (the user's
    /// row lock, already held, keeps them from changing under us).
    private func interview(_ id: Int64, on connection: PostgresConnection) throws -> (slot: Int64, user: Int64, active: Bool)? {
        guard let row = try connection.query(
            "SELECT time_slot_id, user_id, status = 'active' FROM interviews WHERE id = \(id)"
        ).first else { return nil }
        let (slot, user, active) = try row.decode(Int64.self, Int64.self, Bool.self)
        return (slot, user, active)
    }

    /// Locks the interview row (last in the lock order) and checks it did not move meanwhile.
    private func lockInterview(_ id: Int64, expectedSlot: Int64, on connection: PostgresConnection) throws -> Bool {
        let rows = try connection.query(
            "SELECT time_slot_id, status = 'active' FROM interviews WHERE id = \(id) FOR UPDATE")
        guard let row = rows.first else { return false }
        let (slot, active) = try row.decode(Int64.self, Bool.self)
        return slot == expectedSlot && active
    }

    private func cancel(_ request: BookingRequest, on connection: PostgresConnection) throws -> BookingResult {
        guard let interviewID = request.interviewID,
            let current = try interview(interviewID, on: connection),
            current.user == request.userID, current.active
        else { return BookingResult(outcome: .rejected, interviewID: request.interviewID) }
        _ = try lockSlots([current.slot], on: connection)
        guard try lockInterview(interviewID, expectedSlot: current.slot, on: connection) else {
            return BookingResult(outcome: .rejected, interviewID: interviewID)
        }
        try connection.execute(
            "UPDATE interviews SET status = 'cancelled', ended_at = now() WHERE id = \(interviewID)")
        return BookingResult(outcome: .cancelled, interviewID: interviewID)
    }

    private func reschedule(_ request: BookingRequest, key: String, on connection: PostgresConnection) throws
        -> BookingResult
    {
        guard let interviewID = request.interviewID, let target = request.slotID,
            let current = try interview(interviewID, on: connection),
            current.user == request.userID, current.active
        else { return BookingResult(outcome: .rejected, interviewID: request.interviewID) }
        // Both slots, ascending: A→B and B→A lock in the same order.
        let slots = try lockSlots([current.slot, target], on: connection)
        guard try lockInterview(interviewID, expectedSlot: current.slot, on: connection) else {
            return BookingResult(outcome: .rejected, interviewID: interviewID)
        }
        guard let isOpen = slots[target] else { return BookingResult(outcome: .unknownSlot, interviewID: interviewID) }
        guard isOpen, target != current.slot else { return BookingResult(outcome: .rejected, interviewID: interviewID) }
        if try slotIsTaken(target, on: connection) {
            return BookingResult(outcome: .slotTaken, interviewID: interviewID)
        }
        try connection.execute(
            "UPDATE interviews SET status = 'rescheduled', ended_at = now() WHERE id = \(interviewID)")
        let moved = try connection.query(
            """
            INSERT INTO interviews (user_id, time_slot_id, message_key)
            VALUES (\(request.userID), \(target), \(key)) RETURNING id
            """
        ).single().decode(Int64.self, at: 0)
        return BookingResult(outcome: .rescheduled, interviewID: moved)
    }

    /// Records the outcome in the inbox and queues the bot's reply.
    private func finish(_ result: BookingResult, key: String, chatID: Int64?, on connection: PostgresConnection)
        throws -> BookingResult
    {
        // processed_at is stamped here, just before COMMIT, so it measures accepted → committed.
        try connection.execute(
            """
            UPDATE inbox
            SET outcome = \(result.outcome.rawValue), interview_id = \(result.interviewID),
                processed_at = clock_timestamp()
            WHERE message_key = \(key)
            """)
        if let chat = chatID {
            try connection.execute(
                """
                INSERT INTO outbox (message_key, chat_id, method, payload)
                VALUES (\(key), \(chat), 'sendMessage',
                        jsonb_build_object('chat_id', \(chat), 'text', \(result.outcome.reply)))
                """)
        }
        return result
    }
}
