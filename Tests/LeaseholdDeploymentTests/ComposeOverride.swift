import Foundation
import Yams

/// `docker compose -f compose.yaml -f override.yaml …`: later files merged into earlier ones the
/// way Compose does for the keys these files use. A service's mappings merge key by key
/// (`environment` and `depends_on` in either of their forms, `healthcheck`, `networks`, …),
/// `volumes` merge by their path in the container (a later mount of the same path replaces the
/// earlier), and every other value (`command`, `entrypoint`, `image`, lists) is replaced.
extension ComposeFile {
    /// compose.yaml with the files in Compose/ named by `overrides` (e.g. `redis-cluster.yaml`)
    /// applied in order, all interpolated with `variables`.
    static func load(overrides: [String], variables: [String: String]) throws -> ComposeFile {
        var compose = try load(variables: variables)
        for name in overrides {
            let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            compose = compose.merged(with: try load(text: text, variables: variables))
        }
        return compose
    }

    /// This file with `override` applied.
    func merged(with override: ComposeFile) -> ComposeFile {
        var services = self.services
        for (name, service) in override.services {
            guard let base = services[name] else {
                services[name] = service
                continue
            }
            services[name] = ComposeService(name: name, definition: Self.merge(base, service))
        }
        var networks = self.networks
        for (key, value) in override.networks { networks[key] = value }
        return ComposeFile(text: text + "\n" + override.text, services: services, networks: networks)
    }

    /// The names of the top-level `volumes` the files declare.
    static func declaredVolumes(in text: String) throws -> Set<String> {
        let root = try Yams.load(yaml: text) as? [AnyHashable: Any]
        return Set((root?["volumes"] as? [AnyHashable: Any] ?? [:]).keys.map { "\($0)" })
    }

    private static func merge(_ base: ComposeService, _ override: ComposeService) -> [AnyHashable: Any] {
        var result = base.definition
        for (key, value) in override.definition {
            switch "\(key)" {
            case "environment":
                result[key] = base.environment.merging(override.environment) { $1 }
            case "depends_on":
                result[key] = base.dependsOn.merging(override.dependsOn) { $1 }.mapValues { ["condition": $0] }
            case "volumes":
                var volumes = base.volumes
                for volume in override.volumes {
                    volumes.removeAll { containerPath($0) == containerPath(volume) }
                    volumes.append(volume)
                }
                result[key] = volumes
            default:
                result[key] = mergeValue(result[key], value)
            }
        }
        return result
    }

    private static func mergeValue(_ base: Any?, _ override: Any) -> Any {
        guard let base = base as? [AnyHashable: Any], let override = override as? [AnyHashable: Any] else {
            return override
        }
        var result = base
        for (key, value) in override { result[key] = mergeValue(result[key], value) }
        return result
    }

    /// `source:/path[:mode]` → `/path`.
    private static func containerPath(_ volume: String) -> String {
        let parts = volume.split(separator: ":")
        return parts.count >= 2 ? String(parts[1]) : volume
    }
}
