import Foundation
import LeaseholdTesting
import Yams

/// Compose/compose.yaml as Compose reads it: YAML with its anchors and merge keys resolved (Yams),
/// then every string interpolated from a `.env`'s variables — what `docker compose config` prints.
/// Immutable once loaded (hence `@unchecked Sendable` over Yams' `Any` values).
struct ComposeFile: @unchecked Sendable {
    /// The `./…` files this file's services mount that do not exist, as `service mounts path`.
    var missingMounts: [String] {
        services.values.flatMap { service in
            service.volumes.filter { $0.hasPrefix("./") }.compactMap { volume -> String? in
                let source = String(volume.split(separator: ":").first ?? "")
                let path = Self.directory.appendingPathComponent(source).path
                return FileManager.default.fileExists(atPath: path) ? nil : "\(service.name) mounts \(source)"
            }
        }
    }

    static let directory = LeaseholdExecutable.packageRoot.appendingPathComponent("Compose")
    static let url = directory.appendingPathComponent("compose.yaml")

    /// The file's text, before interpolation.
    let text: String
    /// Every service by name (profiles included).
    let services: [String: ComposeService]
    /// The top-level `networks` mapping, interpolated.
    let networks: [AnyHashable: Any]

    /// Loads compose.yaml with `variables` standing for the project's `.env`.
    static func load(variables: [String: String]) throws -> ComposeFile {
        try load(text: String(contentsOf: url, encoding: .utf8), variables: variables)
    }

    static func load(text: String, variables: [String: String]) throws -> ComposeFile {
        guard let root = try Yams.load(yaml: text) as? [AnyHashable: Any] else {
            throw TestSetupError("compose.yaml is not a YAML mapping")
        }
        guard let services = try interpolated(root["services"] ?? [:], variables) as? [AnyHashable: Any] else {
            throw TestSetupError("compose.yaml has no services mapping")
        }
        var parsed: [String: ComposeService] = [:]
        for (key, value) in services {
            let name = "\(key)"
            guard let definition = value as? [AnyHashable: Any] else {
                throw TestSetupError("service \(name) is not a mapping")
            }
            parsed[name] = ComposeService(name: name, definition: definition)
        }
        let networks = try interpolated(root["networks"] ?? [:], variables) as? [AnyHashable: Any] ?? [:]
        return ComposeFile(text: text, services: parsed, networks: networks)
    }

    /// Compose/.env.example: what a user copies to `.env` before the first `docker compose up`.
    static func exampleVariables() throws -> [String: String] {
        ComposeInterpolation.dotenv(
            try String(contentsOf: directory.appendingPathComponent(".env.example"), encoding: .utf8))
    }

    /// The services that run the Leasehold image: built from Compose/Dockerfile, or running the
    /// image such a service builds.
    var leaseholdServices: [ComposeService] {
        let images = Set(services.values.filter { $0.dockerfile == "Compose/Dockerfile" }.compactMap(\.image))
        return services.values.filter { $0.dockerfile == "Compose/Dockerfile" || $0.image.map(images.contains) == true }
            .sorted { $0.name < $1.name }
    }

    subscript(name: String) -> ComposeService? { services[name] }

    /// The `ipam.config` entries (`subnet`, `ip_range`, …) of network `name`.
    func ipamConfig(network name: String) -> [[String: String]] {
        let network = networks[name] as? [AnyHashable: Any]
        let config = (network?["ipam"] as? [AnyHashable: Any])?["config"] as? [Any] ?? []
        return config.compactMap { entry in
            (entry as? [AnyHashable: Any]).map { mapping in
                Dictionary(uniqueKeysWithValues: mapping.map { ("\($0.key)", ComposeService.scalar($0.value)) })
            }
        }
    }

    private static func interpolated(_ value: Any, _ variables: [String: String]) throws -> Any {
        switch value {
        case let text as String: return try ComposeInterpolation.interpolate(text, variables: variables)
        case let list as [Any]: return try list.map { try interpolated($0, variables) }
        case let mapping as [AnyHashable: Any]:
            var result: [AnyHashable: Any] = [:]
            for (key, item) in mapping { result[key] = try interpolated(item, variables) }
            return result
        default: return value
        }
    }
}
