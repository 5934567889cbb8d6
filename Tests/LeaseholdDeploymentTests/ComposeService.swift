import Foundation

/// One service of compose.yaml, after interpolation. Immutable (hence `@unchecked Sendable` over
/// Yams' `Any` values).
struct ComposeService: @unchecked Sendable {
    let name: String
    let definition: [AnyHashable: Any]

    var image: String? { definition["image"].map(Self.scalar) }

    /// `build.dockerfile` (relative to the build context).
    var dockerfile: String? { (definition["build"] as? [AnyHashable: Any])?["dockerfile"].map(Self.scalar) }

    var buildContext: String? { (definition["build"] as? [AnyHashable: Any])?["context"].map(Self.scalar) }

    /// `command` as an argument list.
    var command: [String] {
        if let list = definition["command"] as? [Any] { return list.map(Self.scalar) }
        return definition["command"].map { Self.scalar($0).split(separator: " ").map(String.init) } ?? []
    }

    /// `entrypoint` as an argument list (empty: the image's).
    var entrypoint: [String] {
        if let list = definition["entrypoint"] as? [Any] { return list.map(Self.scalar) }
        return definition["entrypoint"].map { Self.scalar($0).split(separator: " ").map(String.init) } ?? []
    }

    /// The value following `flag` in `command` (`--appendfsync always` → `always`).
    func commandValue(after flag: String) -> String? {
        let command = self.command
        guard let index = command.firstIndex(of: flag), index + 1 < command.count else { return nil }
        return command[index + 1]
    }

    /// The subcommand words of `leasehold` (`["slots", "sync"]`): the command up to its first option.
    var role: [String] { Array(command.prefix { !$0.hasPrefix("-") }) }

    /// `environment`, in either of Compose's forms (mapping, or `NAME=value` list).
    var environment: [String: String] {
        if let mapping = definition["environment"] as? [AnyHashable: Any] {
            return Dictionary(
                uniqueKeysWithValues: mapping.map { ("\($0.key)", $0.value is NSNull ? "" : Self.scalar($0.value)) })
        }
        var result: [String: String] = [:]
        for item in (definition["environment"] as? [Any] ?? []).map(Self.scalar) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            result[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return result
    }

    var healthcheck: [AnyHashable: Any]? { definition["healthcheck"] as? [AnyHashable: Any] }

    /// `healthcheck.test` as a list (`["CMD", …]` or `["CMD-SHELL", "…"]`).
    var healthcheckTest: [String] {
        if let list = healthcheck?["test"] as? [Any] { return list.map(Self.scalar) }
        return healthcheck?["test"].map { ["CMD-SHELL", Self.scalar($0)] } ?? []
    }

    var stopGracePeriod: Duration? { definition["stop_grace_period"].flatMap { Self.duration(Self.scalar($0)) } }

    var replicas: Int {
        ((definition["deploy"] as? [AnyHashable: Any])?["replicas"]).flatMap { Int(Self.scalar($0)) } ?? 1
    }

    /// `depends_on`: service → condition (`service_started` for the short list form).
    var dependsOn: [String: String] {
        if let list = definition["depends_on"] as? [Any] {
            return Dictionary(uniqueKeysWithValues: list.map { (Self.scalar($0), "service_started") })
        }
        var result: [String: String] = [:]
        for (key, value) in definition["depends_on"] as? [AnyHashable: Any] ?? [:] {
            result["\(key)"] = ((value as? [AnyHashable: Any])?["condition"]).map(Self.scalar) ?? "service_started"
        }
        return result
    }

    var volumes: [String] { (definition["volumes"] as? [Any] ?? []).map(Self.scalar) }
    var ports: [String] { (definition["ports"] as? [Any] ?? []).map(Self.scalar) }
    var profiles: [String] { (definition["profiles"] as? [Any] ?? []).map(Self.scalar) }

    func string(_ key: String) -> String? { definition[key].map(Self.scalar) }

    /// The fixed IPv4 address the service asks for on `network`, if any.
    func ipv4Address(network: String) -> String? {
        let networks = definition["networks"] as? [AnyHashable: Any]
        return ((networks?[network] as? [AnyHashable: Any])?["ipv4_address"]).map(Self.scalar)
    }

    static func scalar(_ value: Any) -> String {
        switch value {
        case let text as String: text
        case let flag as Bool: flag ? "true" : "false"
        case is NSNull: ""
        default: "\(value)"
        }
    }

    /// A Compose duration: `1m30s`, `30s`, `500ms`.
    static func duration(_ text: String) -> Duration? {
        var total = Duration.zero
        var rest = Substring(text)
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isNumber }
            rest = rest.dropFirst(digits.count)
            let unit = rest.prefix { $0.isLetter }
            rest = rest.dropFirst(unit.count)
            guard let amount = Int(digits) else { return nil }
            switch unit {
            case "h": total += .seconds(amount * 3600)
            case "m": total += .seconds(amount * 60)
            case "s": total += .seconds(amount)
            case "ms": total += .milliseconds(amount)
            case "us": total += .microseconds(amount)
            default: return nil
            }
        }
        return total
    }
}
