import Foundation
import LeaseholdReactor
import LeaseholdTesting
import Testing

@testable import LeaseholdPostgres

/// `PostgresConnection`: non-blocking libpq on a reactor returns the same values and the same
/// errors as the blocking connection (the cases are the blocking suites' own), cancels a running
/// statement on the server, and reports a lost connection as `.connection`.
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct PostgresConnectionTests {
    // MARK: Values

    @Test("text parameters echo unchanged", arguments: PostgresRoundTripTests.texts)
    func textEcho(_ text: String) async throws {
        try await PostgresReactorFixture.withConnection { connection, _ in
            let row = try await connection.query(
                "SELECT \(text)::text, char_length(\(text)::text), octet_length(\(text)::text)"
            ).single()
            let (echoed, characters, bytes) = try row.decode(String.self, Int64.self, Int64.self)
            #expect(echoed == text)
            #expect(characters == Int64(text.unicodeScalars.count))
            #expect(bytes == Int64(text.utf8.count))
        }
    }

    @Test("bytea keeps every byte, NUL included", arguments: PostgresRoundTripTests.blobs)
    func byteaEcho(_ bytes: [UInt8]) async throws {
        try await PostgresReactorFixture.withConnection { connection, _ in
            let row = try await connection.query("SELECT \(bytes), octet_length(\(bytes)), \(Data(bytes))").single()
            let (echoed, length, data) = try row.decode([UInt8].self, Int64.self, Data.self)
            #expect(echoed == bytes)
            #expect(length == Int64(bytes.count))
            #expect(data == Data(bytes))
        }
    }

    @Test("Decimal parameters and server NUMERIC values are exact", arguments: PostgresNumericTests.values)
    func numericEcho(_ text: String) async throws {
        let value = try #require(Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")))
        try await PostgresReactorFixture.withConnection { connection, _ in
            let row = try await connection.query(
                "SELECT \(value), \(text)::numeric, \(value) = \(text)::numeric, (\(text)::numeric)::text"
            ).single()
            let (echoed, server, equal, serverText) = try row.decode(Decimal.self, Decimal.self, Bool.self, String.self)
            #expect(echoed == value)
            #expect(server == value)
            #expect(equal)
            #expect(serverText == text)
        }
    }

    @Test("integers, booleans and floats echo at their edges")
    func scalars() async throws {
        try await PostgresReactorFixture.withConnection { connection, _ in
            for value in [0, 1, -1, 1 << 40, Int64.max, Int64.min] {
                let row = try await connection.query("SELECT \(value), pg_typeof(\(value))::text").single()
                #expect(try row.decode(Int64.self, String.self) == (value, "bigint"))
            }
            for value in [Int32.min, -1, 0, Int32.max] {
                let row = try await connection.query("SELECT \(value), pg_typeof(\(value))::text").single()
                #expect(try row.decode(Int32.self, String.self) == (value, "integer"))
            }
            let widths = try await connection.query(
                "SELECT (-12345)::int2, 2147483647::int4, 4294967295::oid, 42::int8"
            ).single().decode(Int64.self, Int64.self, Int64.self, Int32.self)
            #expect(widths == (-12345, 2_147_483_647, 4_294_967_295, 42))
            for value in [true, false] {
                let row = try await connection.query("SELECT \(value), NOT \(value)").single()
                #expect(try row.decode(Bool.self, Bool.self) == (value, !value))
            }
            for value in [0.0, -0.0, 1.5, Double.pi, 1e300, -1e-300, .greatestFiniteMagnitude, .infinity] {
                let decoded = try await connection.query("SELECT \(value)").single().decode(Double.self, at: 0)
                #expect(decoded.bitPattern == value.bitPattern)
            }
            let (nan, single) = try await connection.query("SELECT 'NaN'::float8, 1.5::float4").single()
                .decode(Double.self, Double.self)
            #expect(nan.isNaN)
            #expect(single == 1.5)
        }
    }

    @Test("text types, NULL, UUID, jsonb, dates and int8 arrays decode as on the blocking connection")
    func otherTypes() async throws {
        try await PostgresReactorFixture.withConnection { connection, _ in
            let textual = try await connection.query(
                "SELECT 'Вы'::varchar(10), 'ab'::char(4), 'a_name'::name, '{\"k\": 1}'::json"
            ).single().decode(String.self, String.self, String.self, String.self)
            #expect(textual == ("Вы", "ab  ", "a_name", #"{"k": 1}"#))

            let missing: String? = nil
            let nulls = try await connection.query("SELECT NULL::int8, 5::int8, \(missing), NULL::bytea").single()
            let (none, five, text, bytes) = try nulls.decode(Int64?.self, Int64?.self, String?.self, [UInt8]?.self)
            #expect(none == nil && five == 5 && text == nil && bytes == nil)
            let nullError = #expect(throws: PostgresError.self) { try nulls.decode(Int64.self, at: 0) }
            #expect(nullError?.sqlState == SQLState.clientDecodingFailure)

            let uuid = UUID()
            let uuidRow = try await connection.query("SELECT \(uuid), \(uuid)::text").single()
            #expect(try uuidRow.decode(UUID.self, String.self) == (uuid, uuid.uuidString.lowercased()))

            let document = PostgresJSONB(#"{"b": [1, 2],   "a": "🎉"}"#)
            let json = try await connection.query("SELECT \(document), \(document)::text, \(document)->>'a'").single()
            let (decoded, serverText, field) = try json.decode(PostgresJSONB.self, String.self, String.self)
            #expect(decoded.text == serverText)
            #expect(field == "🎉")

            let now = Date()
            let dates = try await connection.query(
                "SELECT \(now), 'infinity'::timestamptz, '-infinity'::timestamptz, '2024-02-29 12:34:56+00'::timestamp"
            ).single().decode(Date.self, Date.self, Date.self, Date.self)
            #expect(abs(dates.0.timeIntervalSince(now)) <= 1e-6)
            #expect(dates.1 == .distantFuture)
            #expect(dates.2 == .distantPast)
            #expect(dates.3 == Date(timeIntervalSince1970: 1_709_210_096))

            let values = PostgresInt8Array([1, -2, Int64.max, Int64.min, 0])
            let array = try await connection.query("SELECT \(values), cardinality(\(values)), \(PostgresInt8Array([]))")
                .single().decode(PostgresInt8Array.self, Int64.self, PostgresInt8Array.self)
            #expect(array.0 == values)
            #expect(array.1 == 5)
            #expect(array.2.values.isEmpty)

            let rows = try await connection.query("SELECT generate_series(1, 3)::int8 AS n")
            #expect(rows.columns == ["n"])
            #expect(try rows.map { try $0.decode(Int64.self, at: 0) } == [1, 2, 3])
        }
    }

    @Test("simpleQuery runs a script and keeps the last result, in text; execute counts rows")
    func simpleQueryAndExecute() async throws {
        try await PostgresReactorFixture.withConnection { connection, _ in
            let table = IntegrationEnvironment.uniqueName("lh_test")
            let last = try await connection.simpleQuery(
                """
                CREATE TEMPORARY TABLE \(table) (id int);
                INSERT INTO \(table) VALUES (1), (2), (3);
                SELECT sum(id) FROM \(table);
                """)
            #expect(try last.single().decode(String.self, at: 0) == "6")
            #expect(try await connection.execute("UPDATE \(unescaped: table) SET id = id + 1 WHERE id > 1") == 2)
            #expect(try await connection.query("DELETE FROM \(unescaped: table)").commandTag == "DELETE 3")
        }
    }

    // MARK: Errors

    @Test(
        "server errors keep their SQLSTATE and leave the connection usable", arguments: PostgresErrorTests.serverErrors)
    func serverError(_ sql: String, _ sqlState: String) async throws {
        try await PostgresReactorFixture.withConnection { connection, _ in
            let pid = connection.backendPID
            let error = try await #require(throws: PostgresError.self) {
                try await connection.query(PostgresQuery(unsafeSQL: sql))
            }
            #expect(error.sqlState == sqlState)
            #expect(error.source == .server)
            #expect(error.query == sql)
            #expect(connection.isOpen)
            let after = try await connection.query("SELECT pg_backend_pid()").single().decode(Int32.self, at: 0)
            #expect(after == pid)
        }
    }

    @Test("the first error of a script wins, as with PQexec")
    func scriptError() async throws {
        try await PostgresReactorFixture.withConnection { connection, _ in
            let error = try await #require(throws: PostgresError.self) {
                try await connection.simpleQuery("SELECT 1; SELECT 1 / 0; SELECT 2")
            }
            #expect(error.sqlState == "22012")
            #expect(try await connection.simpleQuery("SELECT 3").single().decode(String.self, at: 0) == "3")
        }
    }

    @Test("a unique violation names its constraint and table; a NUL in text is 22021")
    func diagnostics() async throws {
        try await PostgresReactorFixture.withConnection { connection, _ in
            let table = IntegrationEnvironment.uniqueName("lh_test")
            try await connection.simpleQuery("CREATE TEMPORARY TABLE \(table) (id bigint PRIMARY KEY)")
            try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1)")
            let duplicate = try await #require(throws: PostgresError.self) {
                try await connection.execute("INSERT INTO \(unescaped: table) VALUES (\(Int64(1)))")
            }
            #expect(duplicate.sqlState == SQLState.uniqueViolation)
            #expect(duplicate.constraint == "\(table)_pkey")
            #expect(duplicate.table == table)
            #expect(duplicate.severity == "ERROR")
            #expect(duplicate.query?.contains("$1") == true)

            let nul = try await #require(throws: PostgresError.self) {
                try await connection.query("SELECT \("a\u{0}b")::text")
            }
            #expect(nul.sqlState == SQLState.characterNotInRepertoire)
        }
    }

    @Test("connecting to a port nobody listens on fails with 08001, promptly")
    func connectFailure() async throws {
        try await PostgresReactorFixture.onReactor { reactor in
            let configuration = PostgresConfiguration(
                connectionString: "postgres://postgres@127.0.0.1:1/leasehold", connectTimeoutSeconds: 2)
            let clock = ContinuousClock()
            let start = clock.now
            let error = try await #require(throws: PostgresError.self) {
                try await PostgresConnection.connect(configuration: configuration, reactor: reactor)
            }
            #expect(clock.now - start < .seconds(5))
            #expect(error.sqlState == SQLState.unableToConnect)
            #expect(error.source == .connection)
            #expect(error.isRetryable)
        }
    }

    @Test("connect_timeout bounds a connection attempt that never gets an answer")
    func connectTimeout() async throws {
        try await PostgresReactorFixture.onReactor { reactor in
            // A listening socket whose backlog is never accepted: the TCP handshake completes, but no
            // startup reply ever comes.
            let listener = try SilentListener()
            defer { listener.close() }
            let configuration = PostgresConfiguration(
                connectionString: "postgres://postgres@127.0.0.1:\(listener.port)/leasehold?sslmode=disable",
                connectTimeoutSeconds: 1)
            let clock = ContinuousClock()
            let start = clock.now
            let error = try await #require(throws: PostgresError.self) {
                try await PostgresConnection.connect(configuration: configuration, reactor: reactor)
            }
            let elapsed = clock.now - start
            #expect(elapsed >= .milliseconds(900))
            #expect(elapsed < .seconds(4))
            #expect(error.sqlState == SQLState.unableToConnect)
            #expect(error.message.contains("timeout"))
        }
    }

    // MARK: Cancellation and lost connections

    @Test("cancelling the task of a running pg_sleep(10) ends it promptly with 57014; the connection stays usable")
    func cancelRunningStatement() async throws {
        try await PostgresReactorFixture.withClient(size: 1) { observer, reactor in
            let connection = try await PostgresConnection.connect(
                configuration: IntegrationEnvironment.postgresConfiguration, reactor: reactor)
            defer { connection.close() }
            let pid = connection.backendPID
            let marker = IntegrationEnvironment.uniqueName("cancel")
            let sleeping = Task(executorPreference: reactor) {
                try await connection.query(PostgresQuery(unsafeSQL: "SELECT pg_sleep(10) /* \(marker) */"))
            }
            let running = try await PostgresReactorFixture.waitUntilRunning(marker, observer: observer)
            #expect(running == pid)

            let clock = ContinuousClock()
            let start = clock.now
            sleeping.cancel()
            let result = await sleeping.result
            #expect(clock.now - start < .seconds(5))
            #expect(reactor.isCurrent)
            guard case .failure(let failure) = result else {
                Issue.record("pg_sleep(10) returned normally after cancel")
                return
            }
            let error = try #require(failure as? PostgresError)
            #expect(error.sqlState == SQLState.queryCanceled)
            #expect(error.source == .server)

            #expect(connection.isOpen)
            let after = try await connection.query("SELECT pg_backend_pid(), \("after cancel")::text").single()
            #expect(try after.decode(Int32.self, String.self) == (pid, "after cancel"))
        }
    }

    @Test("a task that is already cancelled sends nothing: 57014 from the client")
    func alreadyCancelled() async throws {
        try await PostgresReactorFixture.withConnection { connection, reactor in
            let table = IntegrationEnvironment.uniqueName("lh_test")
            try await connection.simpleQuery("CREATE TEMPORARY TABLE \(table) (id int)")
            let task = Task(executorPreference: reactor) {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await connection.execute("INSERT INTO \(unescaped: table) VALUES (1)")
            }
            let error = try #require(await task.result.failure as? PostgresError)
            #expect(error.sqlState == SQLState.queryCanceled)
            #expect(error.source == .client)
            let count = try await connection.query("SELECT count(*) FROM \(unescaped: table)")
                .single().decode(Int64.self, at: 0)
            #expect(count == 0)
        }
    }

    @Test("pg_terminate_backend of a running statement's session is a .connection error; the connection is closed")
    func terminatedByServer() async throws {
        try await PostgresReactorFixture.withClient(size: 1) { observer, reactor in
            let connection = try await PostgresConnection.connect(
                configuration: IntegrationEnvironment.postgresConfiguration, reactor: reactor)
            defer { connection.close() }
            let marker = IntegrationEnvironment.uniqueName("terminate")
            let sleeping = Task(executorPreference: reactor) {
                try await connection.query(PostgresQuery(unsafeSQL: "SELECT pg_sleep(10) /* \(marker) */"))
            }
            let pid = try #require(try await PostgresReactorFixture.waitUntilRunning(marker, observer: observer))
            try await observer.query("SELECT pg_terminate_backend(\(pid))")

            let error = try #require(await sleeping.result.failure as? PostgresError)
            #expect(error.source == .connection)
            // The server's FATAL 57P01, unless the socket closed before libpq read it.
            #expect([SQLState.adminShutdown, SQLState.connectionFailure].contains(error.sqlState))
            #expect(error.isRetryable)
            #expect(!connection.isOpen)
            #expect(await connection.isReusable() == false)
            let next = try await #require(throws: PostgresError.self) { try await connection.query("SELECT 1") }
            #expect(next.source == .connection)
            #expect(next.sqlState == SQLState.connectionFailure)
        }
    }

    /// libpq closes the socket of a connection it finds lost, and the descriptor's number may then
    /// be reused at once by another socket that is waiting on the reactor (the kernel hands out the
    /// lowest free number; seen in a failover under load). Closing the lost connection afterwards
    /// must leave that wait alone. The reuse is made certain with `F_DUPFD` onto the number (which
    /// never takes a descriptor another test opened meanwhile: then the scenario is tried again).
    @Test("closing a lost connection leaves alone a wait on a new descriptor that reuses its socket's number")
    func lostConnectionsSocketNumberReused() async throws {
        try await PostgresReactorFixture.onReactor { reactor in
            for _ in 1...20 {
                let lost = try await PostgresConnection.connect(
                    configuration: IntegrationEnvironment.postgresConfiguration, reactor: reactor)
                let number = lost.socket
                // The connection dies as under a server crash: the socket reads EOF (and writes
                // fail), so libpq drops the connection and closes the socket.
                try #require(shutdown(number, Int32(SHUT_RDWR)) == 0)
                await #expect(throws: PostgresError.self) { try await lost.query("SELECT 1") }
                try #require(!lost.isOpen)

                var ends: [Int32] = [0, 0]
                try #require(pipe(&ends) == 0)
                var reader = ends[0]
                if reader != number {
                    reader = fcntl(ends[0], F_DUPFD, number)  // the lowest free number from `number` up
                    close(ends[0])
                }
                defer {
                    close(ends[1])
                    close(reader)
                }
                guard reader == number else {
                    lost.close()
                    continue  // another test's socket took the number first
                }
                let waiting = Task(executorPreference: reactor) { try await reactor.readable(number) }
                await Task.yield()  // let the wait start on the reactor
                lost.close()
                var byte: UInt8 = 1
                #expect(write(ends[1], &byte, 1) == 1)
                try await waiting.value  // without the fix: the close took `number` out of the reactor, or crashed
                reactor.forget(number)
                return
            }
            Issue.record("the socket's number was always taken by another test first")
        }
    }

    @Test("a transaction left open is rolled back by isReusable()")
    func reusableRollsBack() async throws {
        try await PostgresReactorFixture.withConnection { connection, _ in
            try await connection.simpleQuery("BEGIN")
            try await connection.query("SELECT 1")
            #expect(await connection.isReusable())
            let idle = try await connection.simpleQuery("SELECT now() = statement_timestamp()")
                .single().decode(String.self, at: 0)
            #expect(idle == "t")
        }
    }

    @Test("every step of 16 connections' queries runs on the reactor's thread")
    func staysOnTheReactor() async throws {
        try await PostgresReactorFixture.onReactor { reactor in
            let results = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<16 {
                    group.addTask {
                        var onReactor = reactor.isCurrent
                        let connection = try await PostgresConnection.connect(
                            configuration: IntegrationEnvironment.postgresConfiguration, reactor: reactor)
                        defer { connection.close() }
                        for round in 0..<20 {
                            onReactor = onReactor && reactor.isCurrent
                            let value = try await connection.query("SELECT \(Int64(index * 100 + round))")
                                .single().decode(Int64.self, at: 0)
                            #expect(value == Int64(index * 100 + round))
                            onReactor = onReactor && reactor.isCurrent
                        }
                        return onReactor
                    }
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(results.count == 16)
            #expect(results.allSatisfy { $0 })
        }
    }
}

extension Result {
    /// The error, if this is a failure.
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

/// A TCP listener on 127.0.0.1 that never accepts: connections to it complete the handshake (the
/// kernel queues them) and then hear nothing.
struct SilentListener {
    let descriptor: Int32
    let port: UInt16

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(listener, 16) == 0 else {
            _ = Glibc.close(listener)
            throw ReactorError(operation: "bind", errno: errno)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        descriptor = listener
        port = UInt16(bigEndian: address.sin_port)
    }

    func close() {
        _ = Glibc.close(descriptor)
    }
}
