import Foundation
import LeaseholdIngress
import LeaseholdTesting
import Testing
import Yams

extension UnitTests {
    /// What the Compose deployment promises, read from the files themselves: scaling by replicas,
    /// migrations before the roles, graceful stops longer than the drain, healthchecks on /readyz,
    /// durable Redis, and every path the files name existing in the repository.
    @Suite("Compose: the file keeps its promises")
    struct ComposeFileTests {
        let compose: ComposeFile

        init() throws {
            compose = try ComposeFile.load(variables: try ComposeFile.exampleVariables())
        }

        private func service(_ name: String) throws -> ComposeService {
            try #require(compose[name], "compose.yaml has no service \(name)")
        }

        @Test("every Leasehold service runs one image, built from Compose/Dockerfile at the repository root")
        func oneImage() throws {
            let services = compose.leaseholdServices
            #expect(Set(services.compactMap(\.image)).count == 1)
            for service in services {
                #expect(service.dockerfile == "Compose/Dockerfile", "\(service.name)")
                let context = ComposeFile.directory.appendingPathComponent(service.buildContext ?? ".")
                    .standardizedFileURL
                #expect(context.path == LeaseholdExecutable.packageRoot.standardizedFileURL.path, "\(service.name)")
                #expect(service.string("init") == "true", "\(service.name): tini forwards SIGTERM")
            }
        }

        @Test(
            "the roles scale by replicas: no fixed names, host ports or consumer names",
            arguments: ["ingress", "worker", "supervisor", "notifier"])
        func scalable(name: String) throws {
            let service = try service(name)
            #expect(service.string("container_name") == nil)
            #expect(service.ports.isEmpty, "a host port clashes at --scale \(name)=2")
            #expect(service.environment["LEASEHOLD_CONSUMER_NAME"] == nil, "the default is unique per replica")
            #expect(service.replicas >= 2)
        }

        @Test("two supervisors, one leader")
        func supervisors() throws {
            #expect(try service("supervisor").replicas == 2)
        }

        @Test("migrate runs once and the roles that use PostgreSQL wait for it to succeed")
        func migrationsFirst() throws {
            let migrate = try service("migrate")
            #expect(migrate.role == ["migrate"])
            #expect(migrate.string("restart") == "no")
            #expect(migrate.dependsOn["postgres"] == "service_healthy")
            for service in compose.leaseholdServices
            where service.environment["POSTGRES_URL"] != nil && service.name != "migrate" {
                #expect(service.dependsOn["migrate"] == "service_completed_successfully", "\(service.name)")
                #expect(service.dependsOn["postgres"] == "service_healthy", "\(service.name)")
            }
            for service in compose.leaseholdServices where service.environment["REDIS_URL"] != nil {
                #expect(service.dependsOn["redis"] == "service_healthy", "\(service.name)")
            }
        }

        @Test("stop_grace_period outlasts the worker's drain timeout")
        func gracePeriod() throws {
            let worker = try service("worker")
            let drain = Duration.milliseconds(try #require(Int(worker.environment["LEASEHOLD_DRAIN_TIMEOUT_MS"] ?? "")))
            let grace = try #require(worker.stopGracePeriod)
            #expect(grace >= drain + .seconds(5), "grace \(grace), drain \(drain)")
            for service in compose.leaseholdServices where service.name != "migrate" {
                #expect(try #require(service.stopGracePeriod) >= grace, "\(service.name)")
            }
        }

        @Test(
            "every long-running role has a healthcheck on its own /readyz",
            arguments: ["ingress", "worker", "supervisor", "notifier"])
        func readiness(name: String) throws {
            let service = try service(name)
            let test = service.healthcheckTest.joined(separator: " ")
            #expect(test.contains("/readyz"))
            // The check reaches the port the role listens on.
            let port = service.environment["LEASEHOLD_METRICS_PORT"] ?? service.environment["LEASEHOLD_INGRESS_PORT"]
            #expect(port != nil, "\(name) serves /readyz on no port")
            #expect(test.contains("LEASEHOLD_METRICS_PORT") && test.contains("LEASEHOLD_INGRESS_PORT"))
        }

        @Test("PostgreSQL 15 and Redis 7 keep their data in volumes; Redis appends every write")
        func state() throws {
            let postgres = try service("postgres")
            #expect(postgres.image?.hasPrefix("postgres:15") == true)
            #expect(postgres.volumes.contains { $0.hasSuffix(":/var/lib/postgresql/data") })
            #expect(postgres.healthcheckTest.contains("pg_isready"))
            let redis = try service("redis")
            #expect(redis.image?.hasPrefix("redis:7") == true)
            #expect(redis.volumes.contains { $0.hasSuffix(":/data") })
            let command = redis.command.joined(separator: " ")
            #expect(command.contains("--appendonly yes"))
            #expect(command.contains("--appendfsync always"))
            #expect(command.contains("--maxmemory-policy noeviction"))
            #expect(!redis.healthcheckTest.isEmpty)
        }

        @Test("the proxy spreads over the ingress service and is the only published Leasehold port")
        func proxy() throws {
            let proxy = try service("proxy")
            let ingress = try service("ingress")
            #expect(proxy.dependsOn["ingress"] == "service_healthy")
            #expect(proxy.ports.count == 1)
            let servers = proxy.environment["NGINX_UPSTREAM_SERVERS"]?.split(separator: " ").map(String.init) ?? []
            #expect(servers.first == "server")
            #expect(servers.dropFirst().first == "ingress:\(ingress.environment["LEASEHOLD_INGRESS_PORT"] ?? "?")")
            #expect(servers.contains("resolve"), "re-resolve `ingress` so --scale needs no reload")
            #expect(proxy.environment["NGINX_RESOLVER"] == "127.0.0.11", "Docker's embedded DNS")
            // Every ${NAME} in the template is one the proxy's environment sets (the image's envsubst
            // leaves unknown ones in place, and nginx would refuse them).
            let template = try String(
                contentsOf: ComposeFile.directory.appendingPathComponent("nginx/leasehold.conf.template"),
                encoding: .utf8)
            let names = ComposeInterpolation.referencedNames(in: template)
            #expect(!names.isEmpty)
            #expect(names.subtracting(proxy.environment.keys).isEmpty, "\(names.sorted())")
            #expect(proxy.volumes.contains { $0.hasPrefix("./nginx/leasehold.conf.template:/etc/nginx/templates/") })
        }

        /// X-Forwarded-For decides who may post YooKassa notifications, so ingress may believe it from
        /// the proxy alone: trusting the network's subnet would let any container on it forge a source.
        @Test("ingress trusts X-Forwarded-For from the proxy's fixed address and from nothing else")
        func trustsOnlyTheProxy() throws {
            let proxy = try service("proxy")
            let ingress = try service("ingress")
            let address = try #require(proxy.ipv4Address(network: "default"), "the proxy has a fixed address")
            let addressBytes = try #require(CIDRBlock.parseAddress(address))
            let trusted = try CIDRBlock.list(ingress.environment["LEASEHOLD_TRUSTED_PROXIES"] ?? "")
            #expect(trusted.count == 1, "\(trusted)")
            #expect(
                trusted.allSatisfy { $0.prefixLength == 32 && $0.contains(addressBytes) },
                "\(trusted) is the proxy only")

            // The address is in the network and outside the range Docker assigns to other containers,
            // and no other service asks for it.
            let ipam = try #require(
                compose.ipamConfig(network: "default").first, "the default network has a known subnet")
            let subnet = try CIDRBlock(try #require(ipam["subnet"]))
            let dynamic = try CIDRBlock(try #require(ipam["ip_range"], "containers get addresses from a range"))
            #expect(subnet.contains(addressBytes))
            #expect(
                subnet.contains(dynamic.network) && dynamic.prefixLength > subnet.prefixLength,
                "the range is in the subnet"
            )
            #expect(!dynamic.contains(addressBytes), "no container can be given the proxy's address")
            for other in compose.services.values where other.name != "proxy" {
                #expect(other.ipv4Address(network: "default") != address, "\(other.name) has the proxy's address")
            }
        }

        @Test("Prometheus scrapes each role's service on the port it serves /metrics on")
        func prometheus() throws {
            let prometheus = try service("prometheus")
            #expect(prometheus.profiles == ["monitoring"])
            let text = try String(
                contentsOf: ComposeFile.directory.appendingPathComponent("prometheus/prometheus.yml"), encoding: .utf8)
            let config = try #require(try Yams.load(yaml: text) as? [AnyHashable: Any])
            let jobs = try #require(config["scrape_configs"] as? [[AnyHashable: Any]])
            var scraped: [String: String] = [:]
            for job in jobs {
                for discovery in job["dns_sd_configs"] as? [[AnyHashable: Any]] ?? [] {
                    for name in discovery["names"] as? [Any] ?? [] {
                        scraped[ComposeService.scalar(name)] = discovery["port"].map(ComposeService.scalar)
                    }
                }
            }
            for name in ["ingress", "worker", "supervisor", "notifier"] {
                let environment = try service(name).environment
                let port = environment["LEASEHOLD_METRICS_PORT"] ?? environment["LEASEHOLD_INGRESS_PORT"]
                #expect(
                    scraped[name] != nil && scraped[name] == port, "\(name): scraped on \(scraped[name] ?? "nothing")")
            }
        }

        @Test("every file compose.yaml mounts exists")
        func mountedFilesExist() {
            for service in compose.services.values {
                for volume in service.volumes where volume.hasPrefix("./") || volume.hasPrefix("../") {
                    let source = String(volume.split(separator: ":").first ?? "")
                    let path = ComposeFile.directory.appendingPathComponent(source).path
                    #expect(FileManager.default.fileExists(atPath: path), "\(service.name) mounts \(source)")
                }
            }
        }

        @Test(".env.example lists every variable compose.yaml interpolates, and none its files do not")
        func exampleCoversInterpolation() throws {
            let used = ComposeInterpolation.referencedNames(in: compose.text)
            let listed = Set(try ComposeFile.exampleVariables().keys)
            #expect(used.subtracting(listed).isEmpty, "missing from .env.example: \(used.subtracting(listed).sorted())")
            // Some variables are for an override file only (redis-cluster.yaml's).
            var usedByAnyFile = used
            for name in ["postgres-standby.yaml", "redis-cluster.yaml"] {
                let text = try String(contentsOf: ComposeFile.directory.appendingPathComponent(name), encoding: .utf8)
                usedByAnyFile.formUnion(ComposeInterpolation.referencedNames(in: text))
            }
            #expect(
                listed.subtracting(usedByAnyFile).isEmpty,
                "unused in compose.yaml and its override files: \(listed.subtracting(usedByAnyFile).sorted())")
        }

        @Test("POSTGRES_PASSWORD is required: compose refuses to start without it")
        func passwordRequired() throws {
            #expect(throws: ComposeInterpolation.MissingVariable.self) {
                _ = try ComposeFile.load(variables: [:])
            }
        }

        @Test("the Dockerfile copies paths that exist, runs as a non-root user, with leasehold as entrypoint")
        func dockerfile() throws {
            let dockerfile = try Dockerfile.load()
            #expect(dockerfile.baseImage(stage: 0)?.hasPrefix("swift:6") == true)
            #expect(dockerfile.baseImage(stage: dockerfile.lastStage) == "debian:bookworm-slim")
            // `${LEASEHOLD_BINARY:-…}`: a binary built on the host, present only when that argument is used.
            for path in dockerfile.copiedPaths where !path.hasPrefix("${") {
                let url = LeaseholdExecutable.packageRoot.appendingPathComponent(path)
                #expect(FileManager.default.fileExists(atPath: url.path), "COPY \(path): missing")
            }
            #expect(dockerfile.copiedPaths.contains("Migrations"))
            // ca-certificates: the notifier's HTTPS calls to the Bot API verify the server's certificate
            // against the system bundle (/etc/ssl/certs/ca-certificates.crt), which only that package brings.
            #expect(
                dockerfile.argument("RUNTIME_PACKAGES")?.split(separator: " ").sorted() == [
                    "ca-certificates", "libhiredis0.14", "libpq5",
                ])
            let user = try #require(dockerfile.final("USER"))
            #expect(!user.hasPrefix("root") && !user.hasPrefix("0"))
            #expect(dockerfile.final("ENTRYPOINT") == #"["leasehold"]"#)
            #expect(
                dockerfile.instructions.contains {
                    $0.keyword == "RUN" && $0.arguments.contains("--static-swift-stdlib")
                })
            let migrations = try #require(dockerfile.environment["LEASEHOLD_MIGRATIONS_DIR"])
            #expect(
                dockerfile.instructions.contains { $0.keyword == "COPY" && $0.arguments == "Migrations \(migrations)" })
        }
    }
}
