import AsyncHTTPClient
import Foundation
import LeaseholdLocalStack
import LeaseholdPostgres
import LeaseholdRuntime
import LeaseholdTesting
import NIOConcurrencyHelpers

/// One notifier test's world: a migrated database of its own, a fake Bot API, and `leasehold
/// notifier` processes (the built binary, real signals) pointed at both. Outbox rows are inserted
/// directly, as the booking transaction would.
final class NotifierFixture: Sendable {
    let database: TemporaryDatabase
    let postgres: PostgresClient
    let api: FakeBotAPI
    let directory: URL
    private let started = NIOLockedValueBox<[(process: ChildProcess, metricsPort: Int)]>([])

    /// Runs `body` with a fresh database and `api`; stops the notifiers and drops the database after.
    static func with<T: Sendable>(_ api: FakeBotAPI, _ body: (NotifierFixture) async throws -> T) async throws -> T {
        let database = try await TemporaryDatabase.create()
        let postgres = database.client(size: 4)
        let fixture = NotifierFixture(
            database: database, postgres: postgres, api: api, directory: try makeTemporaryDirectory("notifier"))
        do {
            _ = try await Migrator(client: postgres).migrate(
                try Migration.load(from: LeaseholdExecutable.migrationsDirectory))
            let result = try await body(fixture)
            await fixture.tearDown()
            return result
        } catch {
            await fixture.tearDown(keepDatabase: true)
            throw error
        }
    }

    private init(database: TemporaryDatabase, postgres: PostgresClient, api: FakeBotAPI, directory: URL) {
        self.database = database
        self.postgres = postgres
        self.api = api
        self.directory = directory
    }

    /// Starts `leasehold notifier` with fast test settings, overridden by `environment`.
    @discardableResult
    func startNotifier(_ name: String, environment extra: [String: String] = [:]) throws -> ChildProcess {
        let metricsPort = try freeLoopbackPort()
        var environment = [
            "POSTGRES_URL": database.url, "TELEGRAM_BOT_TOKEN": FakeBotAPI.token, "TELEGRAM_API_BASE_URL": api.url,
            "LEASEHOLD_NOTIFIER_NAME": name, "LEASEHOLD_NOTIFIER_POLL_INTERVAL_MS": "50",
            "LEASEHOLD_METRICS_PORT": String(metricsPort), "LEASEHOLD_METRICS_HOST": "127.0.0.1", "LOG_LEVEL": "info",
        ]
        environment.merge(extra) { $1 }
        let process = try LeaseholdExecutable.start(["notifier"], name: name, in: directory, environment: environment)
        started.withLockedValue { $0.append((process, metricsPort)) }
        return process
    }

    var processes: [ChildProcess] { started.withLockedValue { $0.map(\.process) } }

    /// Inserts one outbox row as the booking transaction does; returns its id.
    @discardableResult
    func insert(chat: Int64?, text: String, method: String = "sendMessage", key: String? = nil) async throws -> Int64 {
        let payload: String
        if let chat {
            payload = #"{"chat_id":\#(chat),"text":\#(Self.jsonString(text))}"#
        } else {
            payload = #"{"callback_query_id":"cb","text":\#(Self.jsonString(text))}"#
        }
        return try await postgres.query(
            """
            INSERT INTO outbox (message_key, chat_id, method, payload)
            VALUES (\(key ?? "test:\(UUID().uuidString.prefix(8))"), \(chat), \(method), \(PostgresJSONB(payload)))
            RETURNING id
            """
        ).single().decode(Int64.self, at: 0)
    }

    /// Inserts one row per `(chat, text)`, in order; returns their ids.
    func insert(_ replies: [(chat: Int64, text: String)]) async throws -> [Int64] {
        var ids: [Int64] = []
        for reply in replies { ids.append(try await insert(chat: reply.chat, text: reply.text)) }
        return ids
    }

    /// One outbox row as stored.
    struct Row: Sendable {
        var id: Int64
        var chatID: Int64?
        var status: String
        var attempts: Int32
        var lastError: String?
        var messageID: Int64?
        var claimedBy: String?
        var claimedAt: Date?
        var text: String?
    }

    func rows() async throws -> [Row] {
        try await postgres.query(
            """
            SELECT id, chat_id, status, attempts, last_error, telegram_message_id, claimed_by, claimed_at,
                   payload->>'text'
            FROM outbox ORDER BY id
            """
        ).map { row in
            let (id, chat, status, attempts, error, messageID, claimedBy, claimedAt, text) = try row.decode(
                Int64.self, Int64?.self, String.self, Int32.self, String?.self, Int64?.self, String?.self, Date?.self,
                String?.self)
            return Row(
                id: id, chatID: chat, status: status, attempts: attempts, lastError: error, messageID: messageID,
                claimedBy: claimedBy, claimedAt: claimedAt, text: text)
        }
    }

    func row(_ id: Int64) async throws -> Row {
        guard let row = try await rows().first(where: { $0.id == id }) else {
            throw TestSetupError("no outbox row \(id)")
        }
        return row
    }

    /// Waits until no row is `pending` or `sending` (every reply sent or failed).
    func waitUntilSettled(timeout: Duration = .seconds(90)) async throws {
        try await waitUntil(timeout: timeout, "every outbox row sent or failed") {
            try await self.postgres.query("SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')")
                .single().decode(Int64.self, at: 0) == 0
        }
    }

    /// The Prometheus text of notifier number `index`'s `/metrics`.
    func metrics(_ index: Int = 0) async throws -> String {
        let port = started.withLockedValue { $0[index].metricsPort }
        return try await Self.get("http://127.0.0.1:\(port)/metrics").body
    }

    /// The HTTP status of notifier number `index`'s `path` (`/readyz`, `/healthz`).
    func status(_ path: String, of index: Int = 0) async throws -> Int {
        let port = started.withLockedValue { $0[index].metricsPort }
        return try await Self.get("http://127.0.0.1:\(port)\(path)").status
    }

    /// Waits until notifier `index` serves `/healthz`.
    func waitUntilServing(_ index: Int = 0) async throws {
        let process = processes[index]
        try await waitUntil(timeout: .seconds(60), "\(process.name) serves /healthz") {
            guard process.isRunning else { throw TestSetupError("\(process.name) exited:\n\(process.output)") }
            return (try? await self.status("/healthz", of: index)) == 200
        }
    }

    private static func get(_ url: String) async throws -> (status: Int, body: String) {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(5))
        let body = try await response.body.collect(upTo: 4 << 20)
        return (Int(response.status.code), String(buffer: body))
    }

    /// Stops every notifier with SIGTERM; returns their exit statuses by name.
    @discardableResult
    func stopNotifiers() async -> [String: Int32] {
        var statuses: [String: Int32] = [:]
        for process in processes {
            await process.stop(signal: SIGTERM, timeout: .seconds(30))
            statuses[process.name] = process.exitStatus
        }
        return statuses
    }

    private func tearDown(keepDatabase: Bool = false) async {
        for process in processes where process.isRunning { await process.stop(signal: SIGKILL, timeout: .seconds(5)) }
        await postgres.close()
        if !keepDatabase { try? await database.drop() }
    }

    static func jsonString(_ text: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: [text], options: [])
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }
}

/// The largest number of `times` in any window `[t, t + window)`.
func busiestWindow(_ times: [Date], window: TimeInterval = 1.0) -> Int {
    let sorted = times.sorted()
    var best = 0
    var start = 0
    for end in sorted.indices {
        while sorted[end].timeIntervalSince(sorted[start]) >= window { start += 1 }
        best = max(best, end - start + 1)
    }
    return best
}
