import AsyncHTTPClient
import Foundation
import LeaseholdLocalStack
import LeaseholdPostgres
import LeaseholdTesting
import NIOCore
import NIOHTTP1
import Testing

/// compose.yaml's topology without Docker: its `migrate`, then every replica of `ingress`,
/// `worker` and `supervisor` as local processes with the file's own commands and environment
/// (see ``LocalComposeRun`` for the few substitutions), each waited for with its own healthcheck
/// command, and Debian's nginx in front running the template `proxy` mounts. Bookings go through
/// the proxy; both ingress replicas must have taken some, every slot must be booked exactly once,
/// one supervisor must lead, and every role must stop with exit 0 within `stop_grace_period`.
@Suite(
    "Compose topology as local processes", .serialized,
    .enabled(
        if: IntegrationEnvironment.isAvailable && (NginxProxy.executable != nil || IntegrationEnvironment.isRequired)))
struct ComposeTopologyTests {
    static let apiToken = "compose-test-token"
    static let telegramSecret = "compose-test-secret"

    @Test("bookings through the proxy complete on the compose topology")
    func topology() async throws {
        // The user's .env: the example with the secrets filled in.
        var variables = try ComposeFile.exampleVariables()
        variables["LEASEHOLD_API_TOKEN"] = Self.apiToken
        variables["TELEGRAM_WEBHOOK_SECRET"] = Self.telegramSecret
        let compose = try ComposeFile.load(variables: variables)
        let run = try await LocalComposeRun(compose: compose)
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        var proxy: NginxProxy?
        do {
            proxy = try await exercise(run: run, http: http)
        } catch {
            await proxy?.stop()
            _ = await run.shutdown()
            try? await http.shutdown()
            throw error
        }
        // As `docker compose down` goes: clients gone, the proxy first (SIGQUIT), then the roles.
        try await http.shutdown()
        await proxy?.stop()
        #expect(proxy?.process.exitStatus == 0, "nginx: \(proxy?.process.output ?? "")")
        let statuses = await run.shutdown()
        #expect(statuses.count == 6)
        for (name, status) in statuses.sorted(by: { $0.key < $1.key }) {
            #expect(status == 0, "\(name) exited \(status) on SIGTERM")
        }
        // Logs stay behind (in the temporary directory) only when a process misbehaved.
        if statuses.values.allSatisfy({ $0 == 0 }), proxy?.process.exitStatus == 0 {
            try? FileManager.default.removeItem(at: run.directory)
            if let directory = proxy?.directory { try? FileManager.default.removeItem(at: directory) }
        }
    }

    /// Everything between start and shutdown; returns the proxy so the caller stops it.
    private func exercise(run: LocalComposeRun, http: HTTPClient) async throws -> NginxProxy {
        let compose = run.compose
        func service(_ name: String) throws -> ComposeService {
            guard let service = compose[name] else { throw TestSetupError("compose.yaml has no \(name)") }
            return service
        }

        // migrate first; the roles wait for it (depends_on: service_completed_successfully).
        let migrated = try await run.run(try service("migrate"))
        #expect(migrated.status == 0, "\(migrated.output)")

        var started: [LocalComposeRun.Replica] = []
        for name in ["ingress", "worker", "supervisor"] { started += try run.start(try service(name)) }
        #expect(
            started.map(\.name).sorted() == [
                "ingress-0", "ingress-1", "supervisor-0", "supervisor-1", "worker-0", "worker-1",
            ])
        for replica in started { try await run.waitHealthy(replica) }

        // The proxy: compose's `proxy` environment, with the one `server ingress:8080 resolve`
        // line (Docker's DNS names every replica) written out as one line per local replica.
        let proxyService = try service("proxy")
        var proxyEnvironment = proxyService.environment
        let ingress = started.filter { $0.service == "ingress" }
        let words = (proxyEnvironment["NGINX_UPSTREAM_SERVERS"] ?? "").split(separator: " ").map(String.init)
        let parameters = words.dropFirst(2).filter { $0 != "resolve" && $0 != "resolve;" }.joined(separator: " ")
        proxyEnvironment["NGINX_UPSTREAM_SERVERS"] = ingress.map { replica in
            "server 127.0.0.1:\(replica.port ?? 0) \(parameters.hasSuffix(";") ? parameters : parameters + ";")"
        }.joined(separator: " ")
        // The console's virtual host is rendered too (profile `console`, not run here): a port
        // nothing listens on, so its host name answers 502 and every other request must still
        // reach ingress, whichever server nginx reads first.
        proxyEnvironment["NGINX_CONSOLE_SERVERS"] = "server 127.0.0.1:\(try freeLoopbackPort());"
        let proxyPort = try freeLoopbackPort()
        proxyEnvironment["NGINX_PORT"] = "127.0.0.1:\(proxyPort)"
        let proxy = try await NginxProxy.start(
            variables: proxyEnvironment, port: proxyPort, in: try makeTemporaryDirectory("nginx"))
        let base = "http://127.0.0.1:\(proxyPort)"
        do {
            try await drive(
                base: base, run: run, http: http, ingress: ingress,
                supervisors: started.filter { $0.service == "supervisor" })
        } catch {
            await proxy.stop()
            throw error
        }
        return proxy
    }

    private func drive(
        base: String, run: LocalComposeRun, http: HTTPClient, ingress: [LocalComposeRun.Replica],
        supervisors: [LocalComposeRun.Replica]
    ) async throws {
        // Slots and users, as an operator would: `leasehold slots sync` with the worker's settings.
        let worker = try #require(run.compose["worker"])
        let seed = try await LeaseholdExecutable.run(
            ["slots", "sync", "--generate", "13", "--users", "40", "--json", "--start", "2030-01-01T09:00:00Z"],
            in: run.directory, environment: try run.localEnvironment(for: worker))
        #expect(seed.status == 0, "\(seed.output)")
        let report = seed.output.split(separator: "\n").last { $0.hasPrefix("{") } ?? ""
        let slots =
            ((try JSONSerialization.jsonObject(with: Data(report.utf8)) as? [String: Any])?["slotIDs"] as? [NSNumber])?
            .map(\.int64Value) ?? []
        try #require(slots.count == 13)

        // Two requests for each of 12 slots, from different users, concurrently: one wins each.
        let requests = (0..<24).map { index in
            (id: "compose-\(UUID().uuidString.prefix(8))-\(index)", user: index + 1, slot: slots[index / 2])
        }
        let accepted = try await withThrowingTaskGroup(of: Int.self) { group in
            for request in requests {
                group.addTask {
                    try await Self.book(request.id, user: request.user, slot: request.slot, at: base, http: http)
                }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(accepted.allSatisfy { $0 == 202 }, "\(accepted)")

        // A Telegram callback through the proxy, with the secret compose gives ingress.
        let updateID = Int64.random(in: 1_000_000..<9_000_000)
        let telegram = try await Self.send(
            http, .POST, base + "/telegram/webhook",
            headers: [("X-Telegram-Bot-Api-Secret-Token", Self.telegramSecret), ("Content-Type", "application/json")],
            body: """
                {"update_id":\(updateID),"callback_query":{"id":"cb\(updateID)","from":{"id":30},\
                "message":{"message_id":1,"chat":{"id":30}},"data":"book:\(slots[12])"}}
                """)
        #expect(telegram.status == 200, "\(telegram.body)")
        #expect(try await Self.send(http, .GET, base + "/metrics").status == 404, "metrics stay inside")

        // Every outcome, read back through the proxy.
        var outcomes: [String: Int] = [:]
        for request in requests {
            outcomes[try await Self.outcome(of: request.id, at: base, http: http), default: 0] += 1
        }
        #expect(outcomes == ["booked": 12, "slot_taken": 12])

        // The callback's outcome and the no-double-booking invariant, in PostgreSQL.
        let postgres = run.database.client(size: 1)
        let (telegramOutcome, doubleBooked): (String?, Int64)
        do {
            let deadline = ContinuousClock.now + .seconds(30)
            var outcome: String?
            while outcome == nil && ContinuousClock.now < deadline {
                outcome = try await postgres.query("SELECT outcome FROM inbox WHERE message_key = \("tg:\(updateID)")")
                    .first?.decode(String.self, at: 0)
                if outcome == nil { try await Task.sleep(for: .milliseconds(100)) }
            }
            let doubles = try await postgres.query(
                "SELECT count(*) FROM (SELECT time_slot_id FROM interviews WHERE status = 'active' GROUP BY 1 HAVING count(*) > 1) d"
            ).single().decode(Int64.self, at: 0)
            (telegramOutcome, doubleBooked) = (outcome, doubles)
        } catch {
            await postgres.close()
            throw error
        }
        await postgres.close()
        #expect(telegramOutcome == "booked")
        #expect(doubleBooked == 0)

        // The proxy spread the requests: each ingress replica enqueued some.
        for replica in ingress {
            let metrics = try await Self.send(http, .GET, "http://127.0.0.1:\(replica.port ?? 0)/metrics").body
            let enqueued = Self.sum("leasehold_ingress_enqueued_total", in: metrics)
            #expect(enqueued > 0, "\(replica.name) took no request through the proxy")
        }

        // Two supervisors, exactly one leader.
        var leaders = 0.0
        let leaderDeadline = ContinuousClock.now + .seconds(20)
        repeat {
            leaders = 0
            for replica in supervisors {
                let metrics = try await Self.send(http, .GET, "http://127.0.0.1:\(replica.port ?? 0)/metrics").body
                leaders += Self.sum("leasehold_supervisor_is_leader", in: metrics)
            }
            if leaders != 1 { try await Task.sleep(for: .milliseconds(200)) }
        } while leaders != 1 && ContinuousClock.now < leaderDeadline
        #expect(leaders == 1)
    }

    /// The sum of a metric's samples in Prometheus text.
    static func sum(_ metric: String, in text: String) -> Double {
        text.split(separator: "\n").filter { $0.hasPrefix(metric + " ") || $0.hasPrefix(metric + "{") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
    }

    /// `POST /v1/bookings` of one request; the HTTP status.
    static func book(
        _ requestID: String, user: Int, slot: Int64, at base: String, token: String = apiToken, http: HTTPClient
    ) async throws -> Int {
        try await send(
            http, .POST, base + "/v1/bookings",
            headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")],
            body: #"{"request_id":"\#(requestID)","user_id":\#(user),"slot_id":\#(slot)}"#
        ).status
    }

    /// The outcome `GET /v1/bookings/<requestID>` reports once it is not `pending` any more (or,
    /// after 60 s, whatever it says then; `http <status>` when the body has none).
    static func outcome(
        of requestID: String, at base: String, token: String = apiToken, http: HTTPClient
    ) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            let result = try await send(
                http, .GET, base + "/v1/bookings/\(requestID)", headers: [("Authorization", "Bearer \(token)")])
            let status =
                ((try? JSONSerialization.jsonObject(with: Data(result.body.utf8))) as? [String: Any])?["status"]
                as? String ?? "http \(result.status)"
            if status != "pending" || ContinuousClock.now > deadline { return status }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    static func send(
        _ http: HTTPClient, _ method: HTTPMethod, _ url: String, headers: [(String, String)] = [], body: String? = nil
    ) async throws -> (status: Int, body: String) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await http.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 4 << 20)
        return (Int(response.status.code), String(buffer: bytes))
    }
}
