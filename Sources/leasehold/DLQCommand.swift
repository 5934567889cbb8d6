import ArgumentParser
import Foundation
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdWire

/// `leasehold dlq`: the dead-letter queue for operators.
struct DLQCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "Inspect, replay and purge dead letters (messages that can never succeed).",
        subcommands: [DLQList.self, DLQShow.self, DLQReplay.self, DLQPurge.self, DLQStats.self]
    )
}

/// Filters shared by list, replay --all and purge.
struct DLQFilterOptions: ParsableArguments {
    @Option(help: "Only this kind (e.g. booking).")
    var kind: String?

    @Option(help: "Only this stream (full key, e.g. lh:stream:bookings).")
    var stream: String?

    @Option(help: "Only letters dead-lettered at or after this time (ISO 8601, or a duration like 2h, 30m, 7d).")
    var since: String?

    @Option(help: "Only letters whose last error contains this text (case-insensitive).")
    var error: String?

    @Option(
        help: """
            Only letters about this user: a booking's user_id, a payment notification's payment's user \
            (read from the payload when the letter was written).
            """)
    var user: Int64?

    @Option(help: "Only letters about this Telegram chat (a booking's chat_id).")
    var chat: Int64?

    func filter(status: String? = "dead", olderThan: Date? = nil) throws -> DeadLetterQuery.Filter {
        DeadLetterQuery.Filter(
            kind: kind, stream: stream, since: try since.map(parseTime), olderThan: olderThan, errorContains: error,
            status: status, userID: user, chatID: chat)
    }
}

/// ISO 8601, or a duration back from now: `90s`, `30m`, `2h`, `7d`.
func parseTime(_ text: String) throws -> Date {
    do {
        return try DeadLetterQuery.parseTime(text)
    } catch {
        throw ValidationError(error.description)
    }
}

/// The `dlq` subcommands' logging and clients (``CommonOptions/withClients(role:postgresConnections:_:)``).
private func withClients<T>(
    _ common: CommonOptions, _ body: (PostgresClient, RedisClient) async throws -> T
) async throws -> T {
    _ = try common.bootstrapLogging(label: "leasehold.dlq")
    return try await common.withClients(role: "dlq", postgresConnections: 2) { redis, postgres in
        try await body(postgres, redis)
    }
}

private func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.dateEncodingStrategy = .iso8601
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

private func table(_ letters: [DeadLetterQuery.Letter]) -> String {
    guard !letters.isEmpty else { return "no dead letters match" }
    let header = ["ID", "DEAD-LETTERED", "KIND", "KEY", "USER", "ATTEMPTS", "STATUS", "LAST ERROR"]
    let rows = letters.map { letter in
        [
            String(letter.id), letter.deadLetteredAt.formatted(.iso8601), letter.kind, letter.messageKey,
            letter.userID.map(String.init) ?? "-", String(letter.attempts), letter.status,
            String(letter.lastError.prefix(80)),
        ]
    }
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    return ([header] + rows).map { row in
        row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
    }.joined(separator: "\n")
}

struct DLQList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List dead letters, newest first.")

    @OptionGroup var common: CommonOptions
    @OptionGroup var filters: DLQFilterOptions

    @Option(help: "Status: dead, replayed, purged or all.")
    var status: String = "dead"

    @Option(help: "At most this many rows.")
    var limit: Int = 100

    @Flag(help: "JSON for scripts instead of a table.")
    var json = false

    func validate() throws {
        guard ["dead", "replayed", "purged", "all"].contains(status) else {
            throw ValidationError("--status must be dead, replayed, purged or all")
        }
    }

    func run() async throws {
        let filter = try filters.filter(status: status == "all" ? nil : status)
        let letters = try await withClients(common) { postgres, _ in
            try await DeadLetterQuery().list(filter, limit: limit, postgres: postgres)
        }
        if json { try printJSON(letters) } else { print(table(letters)) }
    }
}

struct DLQShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show one dead letter: payload (pretty-printed JSON) and every attempt's error.",
        discussion: """
            Every failed attempt is listed, oldest first, with its time, the worker (consumer) that made it \
            and its error; an attempt whose worker died is recorded by the supervisor that reclaimed it \
            ("worker … stopped responding"). --json prints the same as error_history: \
            [{"at", "attempt", "worker", "error"}, …]. \
            The payload is shown redacted: the values of the fields --redact-fields lists are [redacted], and a \
            payload that is not JSON is not shown at all; --reveal shows it as it is (and says so on standard error).
            """)

    @OptionGroup var common: CommonOptions

    @Argument(help: "The dead letter's ID.")
    var id: Int64

    @Flag(help: "JSON for scripts.")
    var json = false

    @Option(help: Settings.Redaction.fields.help)
    var redactFields: String?

    @Flag(help: "Show the payload as it is, unredacted.")
    var reveal = false

    func run() async throws {
        let configured = try Settings.Redaction.fields.resolve(redactFields)
        let redactor = reveal ? PayloadRedactor.off : configured
        guard
            let found = try await withClients(
                common,
                { postgres, _ in
                    try await DeadLetterQuery().show(id, postgres: postgres)
                })
        else {
            throw ValidationError("no dead letter with ID \(id)")
        }
        if reveal {
            FileHandle.standardError.write(Data("dead letter \(id): payload shown unredacted (--reveal)\n".utf8))
        }
        var letter = found
        let payload = letter.payload ?? ""
        letter.payload = redactor.isOn ? redactor.compact(payload) : letter.payload
        if json {
            try printJSON(letter)
            return
        }
        print(
            """
            ID               \(letter.id)
            key              \(letter.messageKey)
            kind             \(letter.kind)
            stream / entry   \(letter.stream) \(letter.entryID)
            status           \(letter.status)\(letter.replayEntryID.map { " (replayed as \($0))" } ?? "")
            attempts         \(letter.attempts)
            first seen       \(letter.firstSeenAt.formatted(.iso8601))
            dead-lettered    \(letter.deadLetteredAt.formatted(.iso8601))
            last error       \(letter.lastError)
            payload:
            \(redactor.isOn ? redactor.pretty(payload) : DeadLetterQuery.prettyPrinted(payload))
            attempts (oldest first):
            \(Self.history(letter.errorHistory ?? []))
            """)
    }

    /// One line per failed attempt: number, time, worker, error (indented when it spans lines).
    static func history(_ failures: [AttemptFailure]) -> String {
        guard !failures.isEmpty else { return "  (none recorded)" }
        return failures.map { failure in
            let error = failure.error.split(separator: "\n", omittingEmptySubsequences: false)
                .joined(separator: "\n      ")
            let worker = failure.worker ?? "?"
            return "  #\(failure.attempt)  \(AttemptFailure.format(failure.at))  \(worker)\n      \(error)"
        }.joined(separator: "\n")
    }
}

struct DLQReplay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Send dead letters back to their origin stream, attempts reset (idempotent).",
        discussion: """
            Replays the given IDs, or with --all every dead letter matching the filters. Only letters with \
            status dead are sent, and each is marked replayed once its entry is on the stream, so running the \
            same command twice sends nothing the second time. The message keeps its key: if it was somehow \
            processed meanwhile, the worker's inbox makes the replay a no-op.
            """
    )

    @OptionGroup var common: CommonOptions
    @OptionGroup var filters: DLQFilterOptions

    @Argument(help: "Dead letter IDs.")
    var ids: [Int64] = []

    @Flag(help: "Replay every dead letter matching the filters.")
    var all = false

    @Flag(help: "Only list what would be replayed.")
    var dryRun = false

    func validate() throws {
        guard all != !ids.isEmpty else { throw ValidationError("give dead letter IDs, or --all (with filters)") }
    }

    func run() async throws {
        let filter = try filters.filter()
        let letters = try await withClients(common) { postgres, redis in
            try await DeadLetterQuery().replay(
                ids: all ? nil : ids, filter: filter, dryRun: dryRun, postgres: postgres, redis: redis)
        }
        for letter in letters {
            print(
                dryRun
                    ? "would replay \(letter.id) \(letter.messageKey) to \(letter.stream)"
                    : "replayed \(letter.id) \(letter.messageKey) to \(letter.stream) as \(letter.replayEntryID ?? "?")"
            )
        }
        print("\(letters.count) \(dryRun ? "would be replayed" : "replayed")")
    }
}

struct DLQPurge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge",
        abstract: "Mark dead letters purged (rows are kept for the audit trail); asks first unless --yes.")

    @OptionGroup var common: CommonOptions
    @OptionGroup var filters: DLQFilterOptions

    @Argument(help: "Dead letter IDs.")
    var ids: [Int64] = []

    @Option(help: "Purge letters dead-lettered longer ago than this (duration like 30d, or ISO 8601).")
    var olderThan: String?

    @Flag(help: "Do not ask for confirmation.")
    var yes = false

    func validate() throws {
        guard ids.isEmpty != (olderThan == nil) else { throw ValidationError("give dead letter IDs, or --older-than") }
    }

    func run() async throws {
        let filter = try filters.filter(status: nil, olderThan: try olderThan.map(parseTime))
        if !yes {
            guard isatty(STDIN_FILENO) == 1 else {
                throw ValidationError("refusing to purge without confirmation: pass --yes when not on a terminal")
            }
            let what = ids.isEmpty ? "every dead letter older than \(olderThan ?? "")" : "dead letters \(ids)"
            print("Purge \(what)? Type yes: ", terminator: "")
            guard readLine()?.lowercased() == "yes" else {
                print("nothing purged")
                return
            }
        }
        let count = try await withClients(common) { postgres, _ in
            try await DeadLetterQuery().purge(ids: ids.isEmpty ? nil : ids, filter: filter, postgres: postgres)
        }
        print("\(count) purged")
    }
}

struct DLQStats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Counts by status, kind and stream.")

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let rows = try await withClients(common) { postgres, _ in try await DeadLetterQuery().stats(postgres: postgres)
        }
        if rows.isEmpty { print("no dead letters") }
        for row in rows { print("\(row.status)\t\(row.kind)\t\(row.stream)\t\(row.count)") }
    }
}
