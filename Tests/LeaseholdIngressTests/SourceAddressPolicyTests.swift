import LeaseholdIngress
import Testing

extension UnitTests {
    @Suite("CIDR blocks")
    struct CIDRBlockTests {
        @Test func ipv4RangesAndSingleAddresses() throws {
            let block = try CIDRBlock("185.71.76.0/27")
            #expect(block.contains("185.71.76.0"))
            #expect(block.contains("185.71.76.31"))
            #expect(!block.contains("185.71.76.32"))
            #expect(!block.contains("185.71.75.255"))
            let single = try CIDRBlock("77.75.156.11")
            #expect(single.prefixLength == 32)
            #expect(single.contains("77.75.156.11") && !single.contains("77.75.156.12"))
            #expect(try CIDRBlock("0.0.0.0/0").contains("8.8.8.8"))
        }

        @Test func ipv6RangesAndMappedIPv4() throws {
            let block = try CIDRBlock("2a02:5180::/32")
            #expect(block.contains("2a02:5180::1"))
            #expect(block.contains("2a02:5180:ffff:ffff::1"))
            #expect(block.contains("[2a02:5180::1]"))
            #expect(!block.contains("2a02:5181::1"))
            #expect(!block.contains("185.71.76.1"), "families never match each other")
            // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
            #expect(try CIDRBlock("185.71.76.0/27").contains("::ffff:185.71.76.5"))
            #expect(try CIDRBlock("::1").contains("::1"))
            #expect(try CIDRBlock("fe80::/10").contains("fe80::1%eth0"))
        }

        @Test(arguments: [
            "", "185.71.76.0/33", "2a02:5180::/129", "185.71.76/27", "example.com", "1.2.3.4/x", "1.2.3.4/-1",
            "300.1.1.1",
        ])
        func malformedBlocksAreRefused(text: String) {
            #expect(throws: CIDRBlockError.self) { try CIDRBlock(text) }
        }

        @Test func listsSplitOnCommasAndSpaces() throws {
            let blocks = try CIDRBlock.list(" 10.0.0.0/8, 192.168.0.0/16  ::1 ")
            #expect(blocks.map(\.description) == ["10.0.0.0/8", "192.168.0.0/16", "::1"])
            #expect(try CIDRBlock.list("").isEmpty)
            #expect(throws: CIDRBlockError.self) { try CIDRBlock.list("10.0.0.0/8,nonsense") }
        }
    }
}

extension UnitTests {
    @Suite("YooKassa source address policy")
    struct SourceAddressPolicyTests {
        @Test func theDefaultIsYooKassasPublishedRanges() {
            let policy = SourceAddressPolicy()
            #expect(policy.allowed.count == SourceAddressPolicy.yookassaRanges.count)
            for address in [
                "185.71.76.5", "185.71.77.30", "77.75.153.100", "77.75.154.200", "77.75.156.11", "77.75.156.35",
                "2a02:5180::7",
            ] {
                #expect(policy.check(peer: address, forwardedFor: []) == .allowed(client: address), "\(address)")
            }
            for address in ["127.0.0.1", "77.75.156.12", "77.75.154.127", "10.0.0.1", "::1"] {
                guard case .denied = policy.check(peer: address, forwardedFor: []) else {
                    Issue.record("\(address) must be denied")
                    continue
                }
            }
        }

        /// The client the API's flood control counts under: found as for the allowlist, allowed or not.
        @Test func theClientIsFoundWhetherOrNotItIsAllowed() throws {
            let policy = SourceAddressPolicy(trustedProxies: try CIDRBlock.list("10.0.0.0/8"))
            #expect(policy.client(peer: "203.0.113.9", forwardedFor: []) == "203.0.113.9")
            #expect(policy.client(peer: "203.0.113.9", forwardedFor: ["198.51.100.1"]) == "203.0.113.9")
            #expect(policy.client(peer: "10.0.0.2", forwardedFor: ["198.51.100.1, 10.0.0.3"]) == "198.51.100.1")
            #expect(policy.client(peer: "10.0.0.2", forwardedFor: []) == "10.0.0.2")
            #expect(policy.client(peer: "10.0.0.2", forwardedFor: ["unknown"]) == nil)
            #expect(policy.client(peer: nil, forwardedFor: []) == nil)
        }

        @Test func forwardedForIsIgnoredFromAnUntrustedPeer() {
            let policy = SourceAddressPolicy()
            // Anyone can write this header; without a trusted proxy it proves nothing.
            guard case .denied(let reason) = policy.check(peer: "203.0.113.9", forwardedFor: ["185.71.76.5"]) else {
                Issue.record("a forged X-Forwarded-For must not get in")
                return
            }
            #expect(reason.contains("203.0.113.9"))
        }

        @Test func forwardedForIsReadFromTheRightThroughTrustedProxies() throws {
            let policy = SourceAddressPolicy(trustedProxies: try CIDRBlock.list("10.0.0.0/8"))
            #expect(policy.check(peer: "10.0.0.2", forwardedFor: ["185.71.76.5"]) == .allowed(client: "185.71.76.5"))
            // Two proxy hops: the right-most untrusted entry is the client.
            #expect(
                policy.check(peer: "10.0.0.2", forwardedFor: ["185.71.76.5, 10.0.0.3"])
                    == .allowed(client: "185.71.76.5"))
            #expect(
                policy.check(peer: "10.0.0.2", forwardedFor: ["185.71.76.5", "10.0.0.3"])
                    == .allowed(client: "185.71.76.5")
            )
            // A client that prepends a YooKassa address to its own gets judged by its own.
            guard case .denied = policy.check(peer: "10.0.0.2", forwardedFor: ["185.71.76.5, 203.0.113.9"]) else {
                Issue.record("the left-most entry is the client's own claim and must not count")
                return
            }
            // Ports and brackets that some proxies write are tolerated.
            #expect(
                policy.check(peer: "10.0.0.2", forwardedFor: ["185.71.76.5:4711"]) == .allowed(client: "185.71.76.5"))
            #expect(
                policy.check(peer: "10.0.0.2", forwardedFor: ["[2a02:5180::1]:443"]) == .allowed(client: "2a02:5180::1")
            )
            // A garbled header from a trusted proxy is refused, not guessed at.
            guard case .denied(let reason) = policy.check(peer: "10.0.0.2", forwardedFor: ["unknown"]) else {
                Issue.record("malformed X-Forwarded-For must be refused")
                return
            }
            #expect(reason.contains("malformed"))
            // A trusted proxy posting for itself is judged as itself.
            guard case .denied = policy.check(peer: "10.0.0.2", forwardedFor: []) else {
                Issue.record("the proxy's own address is not allowed")
                return
            }
        }

        @Test func anUnknownPeerIsDenied() {
            guard case .denied = SourceAddressPolicy().check(peer: nil, forwardedFor: ["185.71.76.5"]) else {
                Issue.record("no peer address, no entry")
                return
            }
        }
    }
}
