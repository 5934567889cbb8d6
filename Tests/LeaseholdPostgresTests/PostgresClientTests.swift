import LeaseholdPostgres
import LeaseholdReactor
import LeaseholdTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `PostgresClient`: lazy connections lent one task at a time, replaced when broken, and
/// transactions with ``PostgresConnection/withTransaction(_:_:)``'s contract, all on the
/// reactor's thread.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct PostgresClientTests {
    struct BodyFailure: Error, Equatable {
        var reason: String
    }

    /// State shared by tasks that all run on one reactor's thread, so it needs no lock.
    final class ReactorLocal<Value>: @unchecked Sendable {
        private let reactor: Reactor
        private var stored: Value
        init(_ value: Value, on reactor: Reactor) {
            self.reactor = reactor
            self.stored = value
        }
        var value: Value {
            get {
                precondition(reactor.isCurrent)
                return stored
            }
            set {
                precondition(reactor.isCurrent)
                stored = newValue
            }
        }
    }

    static func count(_ client: PostgresClient, _ table: String) async throws -> Int64 {
        try await client.query("SELECT count(*) FROM \(unescaped: table)").single().decode(Int64.self, at: 0)
    }

    // MARK: Pool

    @Test("connections open lazily and are reused")
    func lazyAndReused() async throws {
        try await PostgresReactorFixture.withClient(size: 4) { client, _ in
            var pids: Set<Int32> = []
            for _ in 0..<10 {
                pids.insert(try await client.query("SELECT pg_backend_pid()").single().decode(Int32.self, at: 0))
            }
            #expect(pids.count == 1)
        }
    }

    @Test("open(_:) opens connections up front, at most the pool's size, and they are the ones lent")
    func openUpFront() async throws {
        try await PostgresReactorFixture.withClient(size: 4) { client, reactor in
            #expect(await client.open(3) == 3)
            #expect(await client.open(10) == 4, "never more than the pool's size")
            // Server time now: every backend lent below must have started before it.
            let openedAt = try await client.query("SELECT now()::text").single().decode(String.self, at: 0)
            // Four tasks holding a connection at once get the four opened ones: no new backend.
            let pids = ReactorLocal(Set<Int32>(), on: reactor)
            let held = ReactorLocal(0, on: reactor)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 {
                    group.addTask { () async throws -> Void in
                        try await client.withConnection { (connection: PostgresConnection) async throws -> Void in
                            pids.value.insert(connection.backendPID)
                            held.value += 1
                            while held.value < 4 { try await Task.sleep(for: .milliseconds(5)) }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(pids.value.count == 4)
            let list = pids.value.map(String.init).joined(separator: ",")
            let backends = try await client.query(
                "SELECT count(*) FROM pg_stat_activity WHERE pid IN (\(unescaped: list)) AND backend_start <= \(openedAt)::timestamptz"
            ).single().decode(Int64.self, at: 0)
            #expect(backends == 4, "the four connections lent were the ones opened up front")
        }
    }

    @Test("open(_:warmingUp:) warms each connection it opens, once, before any is lent")
    func openWarmsUpEachNewConnection() async throws {
        try await PostgresReactorFixture.withClient(size: 4) { client, reactor in
            let warmed = ReactorLocal([Int32](), on: reactor)
            let warmUp: @Sendable (PostgresConnection) async -> Void = { connection in
                warmed.value.append(connection.backendPID)
                _ = try? await connection.query("SELECT set_config('leasehold.test_warmed', 'yes', false)")
            }
            #expect(await client.open(3, warmingUp: warmUp) == 3)
            #expect(Set(warmed.value).count == 3)
            // The connections already open are not warmed again; the fourth is.
            #expect(await client.open(4, warmingUp: warmUp) == 4)
            #expect(warmed.value.count == 4 && Set(warmed.value).count == 4)
            // Every connection lent is one that was warmed up.
            let held = ReactorLocal(0, on: reactor)
            let settings = ReactorLocal([String](), on: reactor)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 {
                    group.addTask { () async throws -> Void in
                        try await client.withConnection { (connection: PostgresConnection) async throws -> Void in
                            held.value += 1
                            settings.value.append(
                                try await connection.query("SELECT current_setting('leasehold.test_warmed', true)")
                                    .single().decode(String?.self, at: 0) ?? "unset")
                            while held.value < 4 { try await Task.sleep(for: .milliseconds(5)) }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(settings.value == ["yes", "yes", "yes", "yes"])
        }
    }

    @Test("a connection terminated by the server fails its statement with .connection; the pool reconnects")
    func reconnectsAfterTerminate() async throws {
        try await PostgresReactorFixture.withClient(size: 1) { client, _ in
            let victim = try await client.query("SELECT pg_backend_pid()").single().decode(Int32.self, at: 0)
            let error = try await #require(throws: PostgresError.self) {
                try await client.query("SELECT pg_terminate_backend(pg_backend_pid())")
            }
            #expect(error.source == .connection)
            #expect(error.isRetryable)
            let replacement = try await client.query("SELECT pg_backend_pid()").single().decode(Int32.self, at: 0)
            #expect(replacement != victim)
        }
    }

    @Test("a task cancelled while waiting for a connection throws CancellationError; the pool stays intact")
    func cancelWhileWaiting() async throws {
        try await PostgresReactorFixture.withClient(size: 1) { client, reactor in
            let (released, release) = AsyncStream.makeStream(of: Void.self)
            let holding = ReactorLocal(false, on: reactor)
            let holder = Task(executorPreference: reactor) {
                try await client.withConnection { _ in
                    holding.value = true
                    for await _ in released { break }
                }
            }
            while !holding.value { try await Task.sleep(for: .milliseconds(5)) }

            let waiter = Task(executorPreference: reactor) { try await client.query("SELECT 1") }
            try await Task.sleep(for: .milliseconds(50))
            waiter.cancel()
            #expect(await waiter.result.failure is CancellationError)

            release.yield()
            try await holder.value
            async let first = client.query("SELECT 1")
            async let second = client.query("SELECT 2")
            let values = try await [first, second].map { try $0.single().decode(Int64.self, at: 0) }
            #expect(values == [1, 2])
        }
    }

    @Test("waiters are served in turn when there are more tasks than connections")
    func waitersAreServed() async throws {
        try await PostgresReactorFixture.withClient(size: 2) { client, _ in
            let values = try await withThrowingTaskGroup(of: Int64.self) { group in
                for index in 0..<20 {
                    group.addTask {
                        try await client.query("SELECT \(Int64(index)) FROM pg_sleep(0.01)").single()
                            .decode(Int64.self, at: 0)
                    }
                }
                return try await group.reduce(into: [Int64]()) { $0.append($1) }
            }
            #expect(values.sorted() == Array(0..<20))
        }
    }

    @Test("a closed client refuses new calls")
    func closedClient() async throws {
        try await PostgresReactorFixture.onReactor { (reactor: Reactor) async throws in
            let client = PostgresClient(
                configuration: IntegrationEnvironment.postgresConfiguration, reactor: reactor, size: 2)
            #expect(try await client.query("SELECT 1").single().decode(Int64.self, at: 0) == 1)
            await client.close()
            await #expect(throws: PostgresClientClosedError.self) { try await client.query("SELECT 1") }
        }
    }

    // MARK: Transactions

    @Test("a body that returns commits and its value comes back")
    func commits() async throws {
        try await PostgresReactorFixture.withClient(size: 2) { client, _ in
            try await PostgresReactorFixture.withTable(client, columns: "id bigint PRIMARY KEY, note text") { table in
                let value = try await client.withTransaction { connection in
                    try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1, 'one'), (2, 'two')")
                }
                #expect(value == 2)
                #expect(try await Self.count(client, table) == 2)
            }
        }
    }

    @Test("a body that throws is rolled back and its error is kept as bodyError")
    func bodyErrorRollsBack() async throws {
        try await PostgresReactorFixture.withClient(size: 1) { client, _ in
            try await PostgresReactorFixture.withTable(client, columns: "id bigint PRIMARY KEY") { table in
                let error = try await #require(throws: PostgresTransactionError.self) {
                    try await client.withTransaction { connection in
                        try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1)")
                        throw BodyFailure(reason: "changed my mind")
                    }
                }
                #expect(error.bodyError as? BodyFailure == BodyFailure(reason: "changed my mind"))
                #expect(error.beginError == nil && error.rollbackError == nil && error.commitError == nil)
                #expect(try await Self.count(client, table) == 0)
            }
        }
    }

    @Test("a server error in the body is the bodyError; a swallowed one is commitError 25P02")
    func serverErrorsInBody() async throws {
        try await PostgresReactorFixture.withClient(size: 1) { client, _ in
            try await PostgresReactorFixture.withTable(client, columns: "id bigint PRIMARY KEY") { table in
                let thrown = try await #require(throws: PostgresTransactionError.self) {
                    try await client.withTransaction { connection in
                        try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1)")
                        try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1)")
                    }
                }
                #expect((thrown.bodyError as? PostgresError)?.sqlState == SQLState.uniqueViolation)
                #expect(thrown.rollbackError == nil)

                let swallowed = try await #require(throws: PostgresTransactionError.self) {
                    try await client.withTransaction { connection in
                        try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1)")
                        _ = try? await connection.execute("INSERT INTO \(unescaped: table) VALUES (1)")
                        return "pretending all is well"
                    }
                }
                #expect(swallowed.commitError?.sqlState == "25P02")
                #expect(swallowed.bodyError == nil)
                #expect(try await Self.count(client, table) == 0)
            }
        }
    }

    @Test("a constraint checked at COMMIT is a commitError 23505 from the server")
    func deferredConstraintFailsCommit() async throws {
        try await PostgresReactorFixture.withClient(size: 1) { client, _ in
            try await PostgresReactorFixture.withTable(
                client, columns: "id bigint, CONSTRAINT async_deferred_id UNIQUE (id) DEFERRABLE INITIALLY DEFERRED"
            ) { table in
                let error = try await #require(throws: PostgresTransactionError.self) {
                    try await client.withTransaction { connection in
                        try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1), (1)")
                    }
                }
                let commitError = try #require(error.commitError)
                #expect(commitError.sqlState == SQLState.uniqueViolation)
                #expect(commitError.constraint == "async_deferred_id")
                #expect(commitError.source == .server)
                #expect(error.bodyError == nil)
            }
        }
    }

    @Test("a failing BEGIN is a beginError: the body never runs and the connection is left idle")
    func beginError() async throws {
        try await PostgresReactorFixture.withClient(size: 1) { client, _ in
            let options = PostgresTransactionOptions(lockTimeout: .seconds(30 * 86_400))
            var bodyRan = false
            let error = try await #require(throws: PostgresTransactionError.self) {
                try await client.withTransaction(options) { _ in bodyRan = true }
            }
            #expect(!bodyRan)
            #expect(error.beginError?.sqlState == "22023")
            let idle = try await client.withConnection { connection in
                try await connection.simpleQuery("SELECT now() = statement_timestamp()").single()
                    .decode(String.self, at: 0)
            }
            #expect(idle == "t")
        }
    }

    @Test("a body that loses its connection gets bodyError and rollbackError (.connection); the pool reconnects")
    func rollbackError() async throws {
        try await PostgresReactorFixture.withClient(size: 1) { client, _ in
            try await PostgresReactorFixture.withTable(client, columns: "id bigint") { table in
                let victim = try await client.query("SELECT pg_backend_pid()").single().decode(Int32.self, at: 0)
                let error = try await #require(throws: PostgresTransactionError.self) {
                    try await client.withTransaction { connection in
                        try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1)")
                        try await connection.query("SELECT pg_terminate_backend(pg_backend_pid())")
                    }
                }
                #expect((error.bodyError as? PostgresError)?.source == .connection)
                #expect(error.rollbackError?.source == .connection)
                #expect(error.commitError == nil)
                #expect(error.isRetryable)
                let replacement = try await client.query("SELECT pg_backend_pid()").single().decode(Int32.self, at: 0)
                #expect(replacement != victim)
                #expect(try await Self.count(client, table) == 0)
            }
        }
    }

    @Test("options reach the server, and the timeouts are local to the transaction")
    func options() async throws {
        try await PostgresReactorFixture.withClient(size: 1) { client, _ in
            let inside = try await client.withTransaction(
                PostgresTransactionOptions(
                    isolation: .serializable, lockTimeout: .milliseconds(1_500), statementTimeout: .seconds(7))
            ) { connection in
                try await connection.query(
                    "SELECT current_setting('transaction_isolation'), current_setting('lock_timeout'), current_setting('statement_timeout')"
                ).single().decode(String.self, String.self, String.self)
            }
            #expect(inside == ("serializable", "1500ms", "7s"))
            let after = try await client.query("SELECT current_setting('lock_timeout')").single()
                .decode(String.self, at: 0)
            #expect(after != "1500ms")
            let readOnly = try await #require(throws: PostgresTransactionError.self) {
                try await client.withTransaction(PostgresTransactionOptions(readOnly: true)) { connection in
                    try await connection.query("CREATE TEMPORARY TABLE lh_never (id int)")
                }
            }
            #expect(readOnly.postgresError?.sqlState == SQLState.readOnlySQLTransaction)
        }
    }

    @Test("lock_timeout fails a blocked FOR UPDATE with retryable 55P03")
    func lockTimeout() async throws {
        try await PostgresReactorFixture.withClient(size: 2) { client, reactor in
            try await PostgresReactorFixture.withTable(client, columns: "id bigint PRIMARY KEY") { table in
                try await client.execute("INSERT INTO \(unescaped: table) VALUES (1)")
                let (held, holding) = AsyncStream.makeStream(of: Void.self)
                let (finished, finish) = AsyncStream.makeStream(of: Void.self)
                let holder = Task(executorPreference: reactor) {
                    try await client.withTransaction { connection in
                        try await connection.query("SELECT id FROM \(unescaped: table) WHERE id = 1 FOR UPDATE")
                        holding.yield()
                        for await _ in finished { break }
                    }
                }
                for await _ in held { break }
                let clock = ContinuousClock()
                let start = clock.now
                let error = try await #require(throws: PostgresTransactionError.self) {
                    try await client.withTransaction(PostgresTransactionOptions(lockTimeout: .milliseconds(200))) {
                        connection in
                        try await connection.query("SELECT id FROM \(unescaped: table) WHERE id = 1 FOR UPDATE")
                    }
                }
                #expect(clock.now - start < .seconds(5))
                finish.yield()
                try await holder.value
                #expect(error.postgresError?.sqlState == SQLState.lockNotAvailable)
                #expect(error.isRetryable)
                #expect(error.rollbackError == nil)
            }
        }
    }

    @Test("cancelling a transaction's statement rolls it back with bodyError 57014; the connection is reused")
    func cancelInsideTransaction() async throws {
        try await PostgresReactorFixture.withClient(size: 1) { client, reactor in
            try await PostgresReactorFixture.withClient(on: reactor, size: 1) { observer in
                try await PostgresReactorFixture.withTable(observer, columns: "id bigint") { table in
                    let pid = try await client.query("SELECT pg_backend_pid()").single().decode(Int32.self, at: 0)
                    let marker = IntegrationEnvironment.uniqueName("cancel")
                    let task = Task(executorPreference: reactor) {
                        try await client.withTransaction { connection in
                            try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1)")
                            try await connection.query(PostgresQuery(unsafeSQL: "SELECT pg_sleep(10) /* \(marker) */"))
                        }
                    }
                    #expect(try await PostgresReactorFixture.waitUntilRunning(marker, observer: observer) == pid)
                    let clock = ContinuousClock()
                    let start = clock.now
                    task.cancel()
                    let error = try #require(await task.result.failure as? PostgresTransactionError)
                    #expect(clock.now - start < .seconds(5))
                    #expect((error.bodyError as? PostgresError)?.sqlState == SQLState.queryCanceled)
                    #expect(error.rollbackError == nil)
                    #expect(try await Self.count(observer, table) == 0)
                    let after = try await client.query("SELECT pg_backend_pid()").single().decode(Int32.self, at: 0)
                    #expect(after == pid)
                }
            }
        }
    }

    @Test("a cancelled statement whose backend is stopped ends within the grace; only its connection is lost")
    func cancelWithAStoppedBackend() async throws {
        try await PostgresReactorFixture.withClient(size: 1) { client, reactor in
            try await PostgresReactorFixture.withClient(on: reactor, size: 1) { observer in
                let pid = try await client.query("SELECT pg_backend_pid()").single().decode(Int32.self, at: 0)
                let marker = IntegrationEnvironment.uniqueName("stopped")
                let task = Task(executorPreference: reactor) {
                    try await client.query(PostgresQuery(unsafeSQL: "SELECT pg_sleep(60) /* \(marker) */"))
                }
                #expect(try await PostgresReactorFixture.waitUntilRunning(marker, observer: observer) == pid)
                // The backend cannot act on the cancel: SIGSTOP (a watchdog resumes it after 15 s, so
                // a client that waits on it regardless still ends, late).
                #expect(kill(pid, SIGSTOP) == 0)
                let watchdog = Task.detached {
                    try? await Task.sleep(for: .seconds(15))
                    kill(pid, SIGCONT)
                }
                let clock = ContinuousClock()
                let start = clock.now
                task.cancel()
                let result = await task.result
                let elapsed = clock.now - start
                kill(pid, SIGCONT)
                watchdog.cancel()

                #expect(elapsed < .seconds(2), "the 1 s grace after the cancel, not the stopped backend: \(elapsed)")
                let error = try #require(result.failure as? PostgresError)
                #expect(error.source == .connection, "\(error)")
                // The pool replaces the dropped connection.
                let after = try await client.query("SELECT pg_backend_pid()").single().decode(Int32.self, at: 0)
                #expect(after != pid)
            }
        }
    }

    // MARK: Concurrency

    @Test("32 tasks × 50 transactions over 16 connections lose no update, every step on the reactor's thread")
    func manyTransactions() async throws {
        try await PostgresReactorFixture.withClient(size: 16) { client, reactor in
            try await PostgresReactorFixture.withTable(client, columns: "id int PRIMARY KEY, n bigint NOT NULL") {
                table in
                try await client.execute("INSERT INTO \(unescaped: table) SELECT generate_series(0, 3), 0")
                let backends = ReactorLocal(Set<Int32>(), on: reactor)
                let onReactor = try await withThrowingTaskGroup(of: Bool.self) { group in
                    for task in 0..<32 {
                        group.addTask {
                            var onReactor = reactor.isCurrent
                            for round in 0..<50 {
                                let marker = Int64(task * 1_000 + round)
                                let (seen, pid) = try await client.withTransaction { connection in
                                    onReactor = onReactor && reactor.isCurrent
                                    let id = Int32((task + round) % 4)
                                    let before = try await connection.query(
                                        "SELECT n FROM \(unescaped: table) WHERE id = \(id) FOR UPDATE"
                                    ).single().decode(Int64.self, at: 0)
                                    onReactor = onReactor && reactor.isCurrent
                                    try await connection.execute(
                                        "UPDATE \(unescaped: table) SET n = \(before + 1) WHERE id = \(id)")
                                    return try await connection.query("SELECT \(marker), pg_backend_pid()").single()
                                        .decode(Int64.self, Int32.self)
                                }
                                onReactor = onReactor && reactor.isCurrent
                                backends.value.insert(pid)
                                #expect(seen == marker)
                            }
                            return onReactor
                        }
                    }
                    return try await group.reduce(true) { $0 && $1 }
                }
                #expect(onReactor, "a step ran off the reactor's thread")
                #expect(backends.value.count <= 16)
                #expect(backends.value.count > 1)
                let total = try await client.query("SELECT sum(n)::int8 FROM \(unescaped: table)").single()
                    .decode(Int64.self, at: 0)
                #expect(total == 32 * 50)
            }
        }
    }

    @Test("SELECT … FOR UPDATE serialises two async transactions: the second reads the first's commit")
    func rowLockSerialises() async throws {
        try await PostgresReactorFixture.withClient(size: 2) { client, reactor in
            try await PostgresReactorFixture.withTable(client, columns: "id int PRIMARY KEY, n bigint NOT NULL") {
                table in
                try await client.execute("INSERT INTO \(unescaped: table) VALUES (1, 0)")
                let events = ReactorLocal([String](), on: reactor)
                let (held, holding) = AsyncStream.makeStream(of: Void.self)
                @Sendable func increment(_ name: String, pauseWhileLocked: Bool) async throws -> Int64 {
                    try await client.withTransaction { connection in
                        let before = try await connection.query(
                            "SELECT n FROM \(unescaped: table) WHERE id = 1 FOR UPDATE"
                        ).single().decode(Int64.self, at: 0)
                        events.value.append("\(name) locked")
                        if pauseWhileLocked {
                            holding.yield()
                            // Hold the lock long enough for the other side to queue behind it.
                            try await Task.sleep(for: .milliseconds(300))
                        }
                        try await connection.execute("UPDATE \(unescaped: table) SET n = \(before + 1) WHERE id = 1")
                        events.value.append("\(name) committing")
                        return before
                    }
                }
                let first = Task(executorPreference: reactor) { try await increment("A", pauseWhileLocked: true) }
                for await _ in held { break }
                let second = Task(executorPreference: reactor) { try await increment("B", pauseWhileLocked: false) }
                let seen = (try await first.value, try await second.value)
                #expect(seen == (0, 1), "B read the value A committed")
                #expect(events.value == ["A locked", "A committing", "B locked", "B committing"])
                let n = try await client.query("SELECT n FROM \(unescaped: table) WHERE id = 1").single()
                    .decode(Int64.self, at: 0)
                #expect(n == 2)
            }
        }
    }
}
