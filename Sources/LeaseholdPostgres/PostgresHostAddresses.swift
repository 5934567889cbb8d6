import CLibPQ
import Foundation
import LeaseholdReactor

/// The hosts a connection string names, and the libpq parameters that send the connection to
/// addresses resolved beforehand: how ``PostgresConnection`` keeps libpq's `getaddrinfo`
/// off its reactor (see ``NameResolver``).
///
/// libpq takes `hostaddr` alongside `host`: it then connects to the address without any lookup,
/// and still uses `host` for everything else (TLS server-name checks such as
/// `sslmode=verify-full`, `PQhost`, the password file, error messages). The two lists must have
/// the same number of entries, matched by position.
///
/// Several addresses for one name: libpq given a name tries each of its addresses in turn, but
/// given `hostaddr` only the one. So the name is repeated once per address, each with its own
/// `hostaddr` (and `port` entry, when ports are listed per host): every address is still tried, in
/// `getaddrinfo`'s order, hosts in their given order, and `target_session_attrs` walks the list
/// just as it walked hosts and addresses before. Unix-socket paths (starting with `/` or `@`),
/// empty entries (the default socket) and literal addresses are passed through with an empty
/// `hostaddr`: libpq resolves none of them through the name service.
struct PostgresHostAddresses: Equatable {
    /// The `host` entries, in order.
    var hosts: [String]
    /// The `port` entries: none, one for every host, or one per host.
    var ports: [String]

    init(hosts: [String], ports: [String]) {
        self.hosts = hosts
        self.ports = ports
    }

    /// The hosts of `configuration`'s connection string (or of `PGHOST` and `PGPORT` when it names
    /// none); `nil` when there is nothing to resolve: the string does not parse (libpq reports
    /// that before any lookup), it gives `hostaddr` itself, or its hosts need no lookup.
    init?(configuration: PostgresConfiguration, environment: [String: String] = ProcessInfo.processInfo.environment) {
        var message: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(configuration.connectionString, &message) else {
            if let message { PQfreemem(message) }
            return nil
        }
        defer { PQconninfoFree(options) }
        var values: [String: String] = [:]
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { values[String(cString: keyword)] = String(cString: value) }
            option += 1
        }
        func setting(_ keyword: String, _ variable: String) -> String {
            values[keyword] ?? environment[variable] ?? ""
        }
        guard setting("hostaddr", "PGHOSTADDR").isEmpty else { return nil }
        let host = setting("host", "PGHOST")
        guard !host.isEmpty else { return nil }
        let port = setting("port", "PGPORT")
        self.init(
            hosts: host.split(separator: ",", omittingEmptySubsequences: false).map(String.init),
            ports: port.isEmpty ? [] : port.split(separator: ",", omittingEmptySubsequences: false).map(String.init))
        guard !names.isEmpty else { return nil }
    }

    /// The host names to look up: each once, in order.
    var names: [String] {
        var names: [String] = []
        for host in hosts where Self.needsLookup(host) && !names.contains(host) { names.append(host) }
        return names
    }

    static func needsLookup(_ host: String) -> Bool {
        !host.isEmpty && !host.hasPrefix("/") && !host.hasPrefix("@") && !NameResolver.isLiteralAddress(host)
    }

    /// The `host`, `hostaddr` and (when ports are listed per host) `port` parameters for the
    /// `addresses` of each name. A name missing from `addresses` (its lookup failed) is left
    /// out, as libpq passes over a host it cannot resolve; `nil` when no host is left.
    func parameters(addresses: [String: [String]]) -> [(keyword: String, value: String)]? {
        let perHostPorts = ports.count == hosts.count && hosts.count > 1
        var host: [String] = []
        var hostaddr: [String] = []
        var port: [String] = []
        for (index, name) in hosts.enumerated() {
            let resolved: [String]
            if Self.needsLookup(name) {
                guard let found = addresses[name], !found.isEmpty else { continue }
                resolved = found
            } else {
                resolved = [""]
            }
            for address in resolved {
                host.append(name)
                hostaddr.append(address)
                if perHostPorts { port.append(ports[index]) }
            }
        }
        guard !host.isEmpty else { return nil }
        var parameters = [
            (keyword: "host", value: host.joined(separator: ",")),
            (keyword: "hostaddr", value: hostaddr.joined(separator: ",")),
        ]
        if perHostPorts { parameters.append((keyword: "port", value: port.joined(separator: ","))) }
        return parameters
    }
}

extension PostgresConfiguration {
    /// ``connectParameters`` with every host name of the connection string resolved through
    /// `resolver` (off the calling thread) and handed to libpq as `hostaddr`, so that
    /// `PQconnectStartParams` and `PQconnectPoll` never look a name up themselves. The names
    /// are looked up concurrently, each until `deadline`.
    ///
    /// Throws ``PostgresError`` (SQLSTATE 08001, source `.connection`) naming the hosts when
    /// none resolves (e.g. "name resolution timed out"), `CancellationError` when the task is
    /// cancelled meanwhile.
    func resolvedConnectParameters(
        resolver: NameResolver, deadline: ContinuousClock.Instant?
    ) async throws -> (keywords: [String], values: [String]) {
        let (keywords, values) = connectParameters
        guard let hosts = PostgresHostAddresses(configuration: self) else { return (keywords, values) }
        var addresses: [String: [String]] = [:]
        var failures: [NameResolutionError] = []
        try await withThrowingTaskGroup(of: (String, Result<[String], NameResolutionError>).self) { group in
            for name in hosts.names {
                group.addTask {
                    do {
                        return (name, .success(try await resolver.addresses(of: name, deadline: deadline)))
                    } catch let error as NameResolutionError {
                        return (name, .failure(error))
                    }
                }
            }
            for try await (name, result) in group {
                switch result {
                case .success(let found): addresses[name] = found
                case .failure(let error): failures.append(error)
                }
            }
        }
        guard let overrides = hosts.parameters(addresses: addresses) else {
            throw PostgresError(
                source: .connection, sqlState: SQLState.unableToConnect,
                message:
                    "cannot connect to \(redactedConnectionString): \(failures.map(\.description).joined(separator: "; "))"
            )
        }
        // After the connection string: libpq keeps the last value given for a keyword.
        return (keywords + overrides.map(\.keyword), values + overrides.map(\.value))
    }
}
