import Foundation
import LeaseholdReactor
import Testing

extension UnitTests {
    /// The reactor's contract: tasks that prefer it run on its thread, and readiness waits end on
    /// readiness, cancellation or shutdown (``ReactorLibpqTests``: libpq driven from it).
    @Suite("Reactor", .timeLimit(.minutes(1)))
    struct ReactorTests {
        /// A pipe whose ends are closed when the test is done.
        final class Pipe: Sendable {
            let read: Int32
            let write: Int32
            init() throws {
                var ends: [Int32] = [0, 0]
                guard pipe(&ends) == 0 else { throw ReactorError(operation: "pipe", errno: errno) }
                read = ends[0]
                write = ends[1]
            }
            func send(_ byte: UInt8) {
                var byte = byte
                _ = Foundation.write(write, &byte, 1)
            }
            func receive() -> UInt8? {
                var byte: UInt8 = 0
                return Foundation.read(read, &byte, 1) == 1 ? byte : nil
            }
            deinit {
                close(read)
                close(write)
            }
        }

        @Test func tasksThatPreferTheReactorRunOnItsThreadAcrossSuspensions() async throws {
            let reactor = Reactor(label: "test.reactor")
            defer { reactor.shutDown() }
            #expect(!reactor.isCurrent)
            let onReactor = await withTaskExecutorPreference(reactor) {
                var seen: [Bool] = [reactor.isCurrent]
                await Task.yield()
                seen.append(reactor.isCurrent)
                try? await Task.sleep(for: .milliseconds(10))
                seen.append(reactor.isCurrent)
                // Children inherit the preference.
                let children = await withTaskGroup(of: Bool.self) { group in
                    for _ in 0..<8 { group.addTask { reactor.isCurrent } }
                    return await group.reduce(into: [Bool]()) { $0.append($1) }
                }
                return seen + children
            }
            #expect(onReactor.count == 11)
            #expect(onReactor.allSatisfy { $0 }, "\(onReactor)")
        }

        @Test func aWaitEndsWhenAnotherThreadMakesTheDescriptorReadable() async throws {
            let reactor = Reactor()
            defer { reactor.shutDown() }
            let pipe = try Pipe()
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(50)) { pipe.send(42) }
            let received = try await withTaskExecutorPreference(reactor) {
                try await reactor.readable(pipe.read)
                return pipe.receive()
            }
            #expect(received == 42)
        }

        @Test func waitsOnManyDescriptorsEndInTheOrderTheyBecomeReady() async throws {
            let reactor = Reactor()
            defer { reactor.shutDown() }
            let pipes = try (0..<64).map { _ in try Pipe() }
            let order = try await withTaskExecutorPreference(reactor) {
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for (index, pipe) in pipes.enumerated() {
                        group.addTask {
                            try await reactor.readable(pipe.read)
                            #expect(pipe.receive() == UInt8(index))
                            return index
                        }
                    }
                    // Let every child register its wait, then write, last pipe first, one at a time.
                    try await Task.sleep(for: .milliseconds(50))
                    var order: [Int] = []
                    for (index, pipe) in pipes.enumerated().reversed() {
                        pipe.send(UInt8(index))
                        if let done = try await group.next() { order.append(done) }
                    }
                    return order
                }
            }
            #expect(order == Array((0..<64).reversed()))
        }

        @Test func aCancelledWaitThrowsAndTheDescriptorCanBeWaitedOnAgain() async throws {
            let reactor = Reactor()
            defer { reactor.shutDown() }
            let pipe = try Pipe()
            let waiting = Task(executorPreference: reactor) { try await reactor.readable(pipe.read) }
            try await Task.sleep(for: .milliseconds(50))
            waiting.cancel()
            await #expect(throws: CancellationError.self) { try await waiting.value }

            pipe.send(7)
            let received = try await withTaskExecutorPreference(reactor) {
                try await reactor.readable(pipe.read)
                return pipe.receive()
            }
            #expect(received == 7)
        }

        @Test func aWaitWithADeadlineReturnsFalseWhenItPassesAndTrueWhenReady() async throws {
            let reactor = Reactor()
            defer { reactor.shutDown() }
            let pipe = try Pipe()
            let clock = ContinuousClock()
            let (timedOut, elapsed, ready, received, passed, passedButReady) = try await withTaskExecutorPreference(
                reactor
            ) {
                let start = clock.now
                let timedOut = try await reactor.readable(pipe.read, deadline: start + .milliseconds(100))
                let elapsed = clock.now - start
                // The same descriptor can be waited on again, and readiness wins over a far deadline.
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(20)) { pipe.send(9) }
                let ready = try await reactor.readable(pipe.read, deadline: clock.now + .seconds(10))
                let received = pipe.receive()
                // A deadline already past returns at once: `false` with nothing to read, `true` for a
                // descriptor that is ready all the same (what is there counts).
                let passed = try await reactor.readable(pipe.read, deadline: clock.now - .seconds(1))
                let passedButReady = try await reactor.writable(pipe.write, deadline: clock.now - .seconds(1))
                return (timedOut, elapsed, ready, received, passed, passedButReady)
            }
            #expect(!timedOut)
            #expect(elapsed >= .milliseconds(100))
            #expect(elapsed < .seconds(5))
            #expect(ready)
            #expect(received == 9)
            #expect(!passed)
            #expect(passedButReady)
        }

        @Test func manyDeadlinesEndInTheirOwnTime() async throws {
            let reactor = Reactor()
            defer { reactor.shutDown() }
            let pipes = try (0..<8).map { _ in try Pipe() }
            let clock = ContinuousClock()
            let start = clock.now
            // (index, when its wait began, when it ended), in the order the waits ended.
            let ended = try await withTaskExecutorPreference(reactor) {
                try await withThrowingTaskGroup(of: (Int, Duration, Duration).self) { group in
                    for (index, pipe) in pipes.enumerated() {
                        group.addTask {
                            let began = clock.now - start
                            let ready = try await reactor.readable(
                                pipe.read, deadline: start + .milliseconds(40 * (index + 1)))
                            #expect(!ready)
                            return (index, began, clock.now - start)
                        }
                    }
                    return try await group.reduce(into: [(Int, Duration, Duration)]()) { $0.append($1) }
                }
            }
            #expect(Set(ended.map(\.0)) == Set(0..<8))
            for (index, _, elapsed) in ended { #expect(elapsed >= .milliseconds(40 * (index + 1))) }
            // Whenever two waits were both pending at the earlier one's deadline, the earlier one ended
            // first, even when a late reactor turn found both deadlines passed. (On a stalled machine a
            // task may begin its wait after an earlier deadline has passed; such pairs are not compared.)
            let position = Dictionary(uniqueKeysWithValues: ended.enumerated().map { ($1.0, $0) })
            let began = Dictionary(uniqueKeysWithValues: ended.map { ($0.0, $0.1) })
            for earlier in 0..<8 where began[earlier]! < .milliseconds(40 * (earlier + 1)) {
                for later in (earlier + 1)..<8 where began[later]! < .milliseconds(40 * (earlier + 1)) {
                    #expect(position[earlier]! < position[later]!, "deadline \(earlier) ended after \(later)")
                }
            }
        }

        @Test func workAfterPendingJobsRunsOnTheReactorAfterThem() async throws {
            let reactor = Reactor()
            defer { reactor.shutDown() }
            final class Log: @unchecked Sendable {
                // @unchecked: touched only on the reactor's thread.
                var entries: [String] = []
            }
            let log = Log()
            await withTaskExecutorPreference(reactor) {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        reactor.execute(afterPendingJobs: {
                            #expect(reactor.isCurrent)
                            log.entries.append("after")
                        })
                        log.entries.append("first")
                    }
                    group.addTask { log.entries.append("second") }
                }
                // Let the loop reach the call.
                await Task.yield()
                await Task.yield()
            }
            #expect(log.entries.prefix(2).sorted() == ["first", "second"])
            #expect(log.entries.last == "after")
        }

        @Test func shuttingDownFailsThePendingWaits() async throws {
            let reactor = Reactor()
            let pipe = try Pipe()
            let waiting = Task(executorPreference: reactor) { try await reactor.readable(pipe.read) }
            try await Task.sleep(for: .milliseconds(50))
            reactor.shutDown()
            await #expect(throws: ReactorShutDownError.self) { try await waiting.value }
        }
    }
}
