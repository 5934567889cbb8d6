import LeaseholdReactor
import LeaseholdRedis
import Testing

extension UnitTests {
    /// `RedisConfiguration(url:)` with several nodes (no server needed).
    struct RedisClusterConfigurationTests {
        static func nodes(_ list: (String, Int)...) -> [RedisNodeAddress] {
            list.map { RedisNodeAddress(host: $0.0, port: $0.1) }
        }

        static let accepted: [(String, RedisConfiguration)] = [
            (
                "redis://10.0.0.1:7000,10.0.0.2:7001/0",
                RedisConfiguration(nodes: nodes(("10.0.0.1", 7000), ("10.0.0.2", 7001)))
            ),
            (
                "redis://a.internal:7000,b.internal:7001,c.internal:7002",
                RedisConfiguration(nodes: nodes(("a.internal", 7000), ("b.internal", 7001), ("c.internal", 7002)))
            ),
            (
                "redis://a.internal,b.internal:7001/",
                RedisConfiguration(nodes: nodes(("a.internal", 6379), ("b.internal", 7001)))
            ),
            (
                "redis://app:s3cret@a.internal:7000,b.internal:7001/0",
                RedisConfiguration(
                    nodes: nodes(("a.internal", 7000), ("b.internal", 7001)), username: "app", password: "s3cret")
            ),
            (
                "redis://:p%40ss%2Cw%2Frd@a:1,b:2",
                RedisConfiguration(nodes: nodes(("a", 1), ("b", 2)), password: "p@ss,w/rd")
            ),
            ("redis://:a,b@host:7000/0", RedisConfiguration(host: "host", port: 7000, password: "a,b")),
            ("redis://[::1]:7000,[::1]:7001/0", RedisConfiguration(nodes: nodes(("::1", 7000), ("::1", 7001)))),
            (
                "redis://[fe80::1],127.0.0.1:7001",
                RedisConfiguration(nodes: nodes(("fe80::1", 6379), ("127.0.0.1", 7001)))
            ),
            ("REDIS://A:1,B:2", RedisConfiguration(nodes: nodes(("A", 1), ("B", 2)))),
        ]

        @Test("a URL may list several nodes", arguments: accepted)
        func parses(_ url: String, _ expected: RedisConfiguration) throws {
            let configuration = try RedisConfiguration(url: url)
            #expect(configuration == expected)
            #expect(configuration.host == expected.nodes[0].host)
            #expect(configuration.port == expected.nodes[0].port)
        }

        static let refused: [(url: String, reason: String)] = [
            ("redis://a:7000,b:7001/3", "only database 0"),
            ("redis://a:7000,,b:7001", "node 2 (\"\") has an empty host"),
            ("redis://a:7000,", "node 2"),
            ("redis://,a:7000", "node 1"),
            ("redis://:7000,b:7001", "empty host"),
            ("redis://a:7000,b:x", "port \"x\" is not a number"),
            ("redis://a:7000,b:", "port \"\" is not a number"),
            ("redis://a:7000,b:70000", "port 70000 out of range"),
            ("redis://a:7000,b:0", "port 0 out of range"),
            ("redis://a:7000,b:-1", "is not a number"),
            ("redis://a:7000,::1:7001", "must be in brackets"),
            ("redis://a:7000,[::1:7001", "no closing ]"),
            ("redis://a:7000,[::1]7001", "expected :port"),
            ("redis://a:7000,[]:7001", "not an IPv6 address"),
            ("redis://a:7000,[zz]:7001", "not an IPv6 address"),
            ("redis://a:7000,b c:7001", "not a host name"),
            ("redis://a:7000,a:7000", "listed twice"),
            ("rediss://a:7000,b:7001", "TLS"),
            ("http://a:7000,b:7001", "scheme"),
            ("redis://:s3cret@a:7000,b:x/0", "not a number"),
        ]

        @Test("malformed node lists are refused with a clear client error", arguments: refused)
        func refuses(_ url: String, _ reason: String) {
            let error = #expect(throws: RedisError.self) { try RedisConfiguration(url: url) }
            #expect(error?.source == .client)
            #expect(error?.code == .invalidInput)
            #expect(error?.message.hasPrefix("invalid REDIS_URL") == true)
            #expect(error?.message.contains(reason) == true, "\(error?.message ?? "")")
            #expect(error?.description.contains("s3cret") == false)
        }

        @Test("redactedURL lists every node and hides the password")
        func redaction() throws {
            let configuration = try RedisConfiguration(url: "redis://app:s3cret@a:7000,[::1]:7001")
            #expect(configuration.redactedURL == "redis://app:***@a:7000,[::1]:7001/0")
        }

        @Test("host and port are the first node; setting them changes the first node only")
        func firstNode() throws {
            var configuration = try RedisConfiguration(url: "redis://a:7000,b:7001")
            #expect(configuration.listsSeveralNodes)
            configuration.port = 7100
            configuration.host = "c"
            #expect(configuration.nodes == Self.nodes(("c", 7100), ("b", 7001)))
            #expect(try !RedisConfiguration(url: "redis://a:7000/3").listsSeveralNodes)
            let single = configuration.forNode(RedisNodeAddress(host: "b", port: 7001))
            #expect(single.nodes == Self.nodes(("b", 7001)))
            #expect(single.database == 0)
        }

        @Test("the cluster client refuses a database other than 0")
        func clusterClientDatabase() {
            let reactor = Reactor(label: "test.redis-cluster-configuration")
            defer { reactor.shutDown() }
            let error = #expect(throws: RedisError.self) {
                try RedisClusterClient(configuration: RedisConfiguration(host: "a", database: 2), reactor: reactor)
            }
            #expect(error?.code == .invalidInput)
            #expect(error?.message.contains("only database 0") == true)
        }
    }
}
