import Dispatch
import LeaseholdReactor
import NIOConcurrencyHelpers
import Testing

extension UnitTests {
    /// ``NameResolver``: lookups off the reactor, bounded by the caller's deadline, shared per name and
    /// capped, literal addresses passed through, last good addresses when the name server is slow.
    @Suite(.timeLimit(.minutes(1)))
    struct NameResolverTests {
        /// A lookup the test controls: records the names asked for, answers from `answers`, and blocks
        /// while the gate is closed.
        final class ControlledLookup: Sendable {
            let asked = NIOLockedValueBox<[String]>([])
            let answers = NIOLockedValueBox<[String: Result<[String], NameResolutionError.Reason>]>([:])
            private let gate = DispatchSemaphore(value: 0)
            private let closed = NIOLockedValueBox(false)

            func close() { closed.withLockedValue { $0 = true } }
            /// Opens the gate for every lookup waiting or to come.
            func open(waiting: Int) {
                closed.withLockedValue { $0 = false }
                for _ in 0..<waiting { gate.signal() }
            }

            func lookup(_ host: String) -> Result<[String], NameResolutionError.Reason> {
                asked.withLockedValue { $0.append(host) }
                if closed.withLockedValue({ $0 }) { gate.wait() }
                return answers.withLockedValue { $0[host] } ?? .failure(.failed("Name or service not known"))
            }
        }

        func onReactor<T: Sendable>(_ body: @escaping @Sendable (Reactor) async throws -> T) async throws -> T {
            let reactor = Reactor(label: "test.resolver")
            defer { reactor.shutDown() }
            return try await Task(executorPreference: reactor) { try await body(reactor) }.value
        }

        @Test("literal addresses come back as they are, with no lookup")
        func literalAddressesSkipTheLookup() async throws {
            let lookup = ControlledLookup()
            let resolver = NameResolver(lookup: { lookup.lookup($0) })
            for literal in ["127.0.0.1", "10.1.2.3", "::1", "fe80::1%lo", "2001:db8::7"] {
                #expect(try await resolver.addresses(of: literal, deadline: nil) == [literal])
                #expect(NameResolver.isLiteralAddress(literal))
            }
            for name in ["localhost", "db", "redis.internal", "1.2.3", "/var/run/postgresql", ""] {
                #expect(!NameResolver.isLiteralAddress(name), "\(name)")
            }
            #expect(lookup.asked.withLockedValue { $0 }.isEmpty)
        }

        @Test("a name is looked up off the reactor, and the awaiting task resumes on it")
        func lookupRunsOffTheReactor() async throws {
            let onLookupThread = NIOLockedValueBox<Bool?>(nil)
            let reactorBox = NIOLockedValueBox<Reactor?>(nil)
            let resolver = NameResolver(lookup: { host in
                onLookupThread.withLockedValue { $0 = reactorBox.withLockedValue { $0 }?.isCurrent }
                return .success(["10.0.0.1", "10.0.0.2"])
            })
            let (addresses, resumedOnReactor) = try await onReactor { reactor in
                reactorBox.withLockedValue { $0 = reactor }
                let addresses = try await resolver.addresses(of: "db", deadline: .now + .seconds(5))
                return (addresses, reactor.isCurrent)
            }
            #expect(addresses == ["10.0.0.1", "10.0.0.2"])
            #expect(onLookupThread.withLockedValue { $0 } == false)
            #expect(resumedOnReactor)
        }

        @Test("a lookup that hangs past the deadline fails with \"name resolution timed out\", naming the host")
        func hangingLookupTimesOut() async throws {
            let lookup = ControlledLookup()
            lookup.close()
            let resolver = NameResolver(lookup: { lookup.lookup($0) })
            let clock = ContinuousClock()
            let started = clock.now
            let error = try await onReactor { reactor in
                do {
                    _ = try await resolver.addresses(of: "silent.example", deadline: .now + .milliseconds(300))
                    return nil as NameResolutionError?
                } catch let error as NameResolutionError {
                    // The reactor went on meanwhile, and the task is back on it.
                    #expect(reactor.isCurrent)
                    return error
                }
            }
            let took = clock.now - started
            lookup.open(waiting: 1)
            let failure = try #require(error)
            #expect(failure.host == "silent.example")
            #expect("\(failure)".contains("silent.example"))
            #expect("\(failure)".contains("name resolution timed out"))
            // The lookup itself never returns until the test lets it: any bound proves the deadline
            // ended the wait. Generous, because the whole suite shares two cores in CI.
            #expect(took >= .milliseconds(300) && took < .seconds(5), "took \(took)")
        }

        @Test("callers share a running lookup; past the cap a name fails at once")
        func lookupsAreSharedAndCapped() async throws {
            let lookup = ControlledLookup()
            lookup.close()
            let resolver = NameResolver(maxConcurrentLookups: 2, lookup: { lookup.lookup($0) })
            let clock = ContinuousClock()
            let (busy, took) = try await onReactor { _ in
                let deadline = ContinuousClock.now + .milliseconds(400)
                async let first = try? resolver.addresses(of: "a.example", deadline: deadline)
                async let again = try? resolver.addresses(of: "a.example", deadline: deadline)
                async let second = try? resolver.addresses(of: "b.example", deadline: deadline)
                try await Task.sleep(for: .milliseconds(100))
                let started = clock.now
                var busy: NameResolutionError?
                do {
                    _ = try await resolver.addresses(of: "c.example", deadline: deadline)
                } catch let error as NameResolutionError {
                    busy = error
                }
                let took = clock.now - started
                _ = await (first, again, second)
                return (busy, took)
            }
            lookup.open(waiting: 2)
            // One thread per name: "a.example" was looked up once for both of its callers.
            #expect(lookup.asked.withLockedValue { $0 }.sorted() == ["a.example", "b.example"])
            let error = try #require(busy)
            #expect(error.reason == .busy(2))
            #expect("\(error)".contains("c.example"))
            // Failing at once, not at the 400 ms deadline (then the reason would be a timeout); the
            // bound is loose because the whole suite shares two cores in CI.
            #expect(took < .seconds(2), "past the cap it should fail at once, took \(took)")
        }

        @Test("with last good addresses, a slow name server costs staleAfter, not the deadline")
        func lastGoodAddressesWhenTheNameServerIsSlow() async throws {
            let lookup = ControlledLookup()
            lookup.answers.withLockedValue { $0["db"] = .success(["10.0.0.5"]) }
            let resolver = NameResolver(staleAfter: .milliseconds(25), lookup: { lookup.lookup($0) })
            let clock = ContinuousClock()
            let (first, second, took) = try await onReactor { _ in
                let first = try await resolver.addresses(of: "db", deadline: .now + .seconds(5))
                lookup.close()
                let started = clock.now
                let second = try await resolver.addresses(of: "db", deadline: .now + .seconds(5))
                return (first, second, clock.now - started)
            }
            lookup.open(waiting: 1)
            #expect(first == ["10.0.0.5"])
            #expect(second == ["10.0.0.5"])
            // staleAfter (25 ms), not the 5 s deadline; loose for a loaded machine.
            #expect(took < .milliseconds(2_500), "took \(took)")
        }

        @Test("a name that does not exist fails, with or without last good addresses")
        func definiteFailureIsReported() async throws {
            let resolver = NameResolver(lookup: { _ in .failure(.failed("Name or service not known")) })
            let error = try await onReactor { _ in
                do {
                    _ = try await resolver.addresses(of: "nowhere.invalid", deadline: .now + .seconds(5))
                    return nil as NameResolutionError?
                } catch let error as NameResolutionError {
                    return error
                }
            }
            #expect(error?.reason == .failed("Name or service not known"))
        }

        @Test("the system lookup resolves localhost through /etc/hosts")
        func systemLookupOfLocalhost() throws {
            let addresses = try NameResolver.systemLookup("localhost").get()
            #expect(addresses.contains("127.0.0.1") || addresses.contains("::1"), "\(addresses)")
            #expect(Set(addresses).count == addresses.count)
        }
    }
}
