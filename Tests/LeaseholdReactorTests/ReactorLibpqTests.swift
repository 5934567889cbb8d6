import CLibPQ
import Foundation
import LeaseholdReactor
import LeaseholdTesting
import Testing

/// A non-blocking libpq connection driven from the reactor, against the integration PostgreSQL.
@Suite("Reactor with libpq", .enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct ReactorLibpqTests {
    /// The pattern the roles' connections will use: libpq in non-blocking mode, the query sent
    /// with `PQsendQuery`, its result read as the socket becomes readable. Sixteen connections run
    /// their queries at once and every step, before and after each wait, is on the reactor's
    /// thread.
    @Test
    func nonBlockingLibpqQueriesOnSixteenConnectionsStayOnTheReactorsThread() async throws {
        let reactor = Reactor()
        defer { reactor.shutDown() }
        final class Connection: @unchecked Sendable {
            // @unchecked: used by one task at a time, on the reactor's thread.
            let handle: OpaquePointer
            init(_ conninfo: String) throws {
                handle = PQconnectdb(conninfo)
                guard PQstatus(handle) == CONNECTION_OK, PQsetnonblocking(handle, 1) == 0 else {
                    let message = String(cString: PQerrorMessage(handle))
                    PQfinish(handle)
                    throw TestSetupError("cannot connect: \(message)")
                }
            }
            deinit { PQfinish(handle) }

            func query(_ sql: String, on reactor: Reactor) async throws -> [String] {
                guard PQsendQuery(handle, sql) == 1 else {
                    throw TestSetupError(String(cString: PQerrorMessage(handle)))
                }
                while PQflush(handle) == 1 { try await reactor.writable(PQsocket(handle)) }
                var values: [String] = []
                while true {
                    while PQisBusy(handle) == 1 {
                        try await reactor.readable(PQsocket(handle))
                        guard PQconsumeInput(handle) == 1 else {
                            throw TestSetupError(String(cString: PQerrorMessage(handle)))
                        }
                    }
                    guard let result = PQgetResult(handle) else { return values }
                    defer { PQclear(result) }
                    guard PQresultStatus(result) == PGRES_TUPLES_OK else {
                        throw TestSetupError(String(cString: PQresultErrorMessage(result)))
                    }
                    for row in 0..<PQntuples(result) { values.append(String(cString: PQgetvalue(result, row, 0))) }
                }
            }
        }
        let connections = try (0..<16).map { _ in try Connection(IntegrationEnvironment.postgresURL) }
        let results = try await withTaskExecutorPreference(reactor) {
            try await withThrowingTaskGroup(of: (Bool, [String]).self) { group in
                for (index, connection) in connections.enumerated() {
                    group.addTask {
                        var onReactor = reactor.isCurrent
                        var last: [String] = []
                        for round in 0..<25 {
                            last = try await connection.query(
                                "SELECT generate_series(1, 3) * \(index * 100 + round)", on: reactor)
                            onReactor = onReactor && reactor.isCurrent
                        }
                        return (onReactor, last)
                    }
                }
                return try await group.reduce(into: [(Bool, [String])]()) { $0.append($1) }
            }
        }
        #expect(results.count == 16)
        let allOnReactor = results.allSatisfy { $0.0 }
        #expect(allOnReactor, "a task left the reactor's thread")
        let expected: Set<[String]> = Set(
            (0..<16).map { (index: Int) -> [String] in
                let factor = index * 100 + 24
                return [String(factor), String(2 * factor), String(3 * factor)]
            })
        #expect(Set(results.map(\.1)) == expected)
    }
}
