import Foundation
import LeaseholdReactor
import Testing

extension UnitTests {
    /// `readableAgain`: a descriptor that stays registered for input between waits keeps every
    /// guarantee of a plain wait — readiness, deadlines, cancellation, input nobody waited for, a
    /// number closed behind the reactor's back and reused.
    @Suite("Reactor registrations", .timeLimit(.minutes(1)))
    struct ReactorRegistrationTests {
        typealias Pipe = ReactorTests.Pipe

        @Test func repeatedWaitsEachEndOnTheirInput() async throws {
            let reactor = Reactor()
            defer { reactor.shutDown() }
            let pipe = try Pipe()
            let received = try await withTaskExecutorPreference(reactor) {
                reactor.adopt(pipe.read)
                var received: [UInt8] = []
                for value in UInt8(1)...20 {
                    DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(2)) { pipe.send(value) }
                    let ready1 = try await reactor.readableAgain(pipe.read)
                    #expect(ready1)
                    if let byte = pipe.receive() { received.append(byte) }
                }
                reactor.forget(pipe.read)
                return received
            }
            #expect(received == Array(UInt8(1)...20))
        }

        @Test func inputNobodyWaitsForEndsTheNextWaitAtOnce() async throws {
            let reactor = Reactor()
            defer { reactor.shutDown() }
            let pipe = try Pipe()
            try await withTaskExecutorPreference(reactor) {
                reactor.adopt(pipe.read)
                pipe.send(1)
                let ready2 = try await reactor.readableAgain(pipe.read)
                #expect(ready2)
                #expect(pipe.receive() == 1)
                // Input arrives while nobody waits, and stays unread across several loop turns: the
                // loop must not spin on it, and the next wait must still see it.
                pipe.send(2)
                try await Task.sleep(for: .milliseconds(50))
                let ready3 = try await reactor.readableAgain(pipe.read, deadline: .now + .seconds(5))
                #expect(ready3)
                #expect(pipe.receive() == 2)
                // Nothing to read: the deadline passes.
                let ready4 = try await reactor.readableAgain(pipe.read, deadline: .now + .milliseconds(30))
                #expect(!ready4)
                reactor.forget(pipe.read)
                // A hang-up nobody waits for, then a wait: it ends at once.
                var ends: [Int32] = [0, 0]
                try #require(Foundation.pipe(&ends) == 0)
                reactor.adopt(ends[0])
                let ready5 = try await reactor.readableAgain(ends[0], deadline: .now + .milliseconds(10))
                #expect(!ready5)
                close(ends[1])
                try await Task.sleep(for: .milliseconds(50))
                let ready6 = try await reactor.readableAgain(ends[0], deadline: .now + .seconds(5))
                #expect(ready6)
                reactor.forget(ends[0])
                close(ends[0])
            }
        }

        @Test func aCancelledWaitLeavesTheDescriptorUsable() async throws {
            let reactor = Reactor()
            defer { reactor.shutDown() }
            let pipe = try Pipe()
            let waiting = Task(executorPreference: reactor) {
                reactor.adopt(pipe.read)
                return try await reactor.readableAgain(pipe.read)
            }
            try await Task.sleep(for: .milliseconds(50))
            waiting.cancel()
            await #expect(throws: CancellationError.self) { try await waiting.value }
            pipe.send(7)
            let received = try await withTaskExecutorPreference(reactor) {
                _ = try await reactor.readableAgain(pipe.read)
                defer { reactor.forget(pipe.read) }
                return pipe.receive()
            }
            #expect(received == 7)
        }

        @Test func aPlainWaitAndAWaitThatStaysRegisteredTakeTurnsOnOneDescriptor() async throws {
            let reactor = Reactor()
            defer { reactor.shutDown() }
            let pipe = try Pipe()
            let received = try await withTaskExecutorPreference(reactor) {
                reactor.adopt(pipe.read)
                var received: [UInt8] = []
                for value in UInt8(1)...6 {
                    DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(2)) { pipe.send(value) }
                    if value % 2 == 0 {
                        try await reactor.readable(pipe.read)
                    } else {
                        _ = try await reactor.readableAgain(pipe.read)
                    }
                    if let byte = pipe.receive() { received.append(byte) }
                }
                reactor.forget(pipe.read)
                return received
            }
            #expect(received == Array(UInt8(1)...6))
        }

        /// The number of a descriptor that stayed registered is closed without forget(_:) (as libpq
        /// closes a lost connection's socket) and reused: a plain wait on it, and a new owner that
        /// adopts it, both get their readiness.
        @Test func aNumberClosedBehindTheReactorsBackAndReusedIsWaitedOnAfresh() async throws {
            let reactor = Reactor()
            defer { reactor.shutDown() }
            try await withTaskExecutorPreference(reactor) {
                for adopting in [false, true] {
                    var tested = false
                    for _ in 1...20 where !tested {
                        var ends: [Int32] = [0, 0]
                        try #require(pipe(&ends) == 0)
                        let (number, writeEnd) = (ends[0], ends[1])
                        reactor.adopt(number)
                        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(2)) {
                            var byte: UInt8 = 1
                            _ = write(writeEnd, &byte, 1)
                        }
                        let ready7 = try await reactor.readableAgain(number)
                        #expect(ready7)
                        close(number)
                        close(writeEnd)

                        let replacement = try Pipe()
                        var reader = replacement.read
                        if reader != number {
                            reader = fcntl(replacement.read, F_DUPFD, number)
                        }
                        defer { if reader != replacement.read { close(reader) } }
                        guard reader == number else { continue }  // another test took the number first
                        tested = true
                        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(20)) { replacement.send(2) }
                        if adopting {
                            reactor.adopt(number)
                            let ready8 = try await reactor.readableAgain(number, deadline: .now + .seconds(5))
                            #expect(ready8)
                        } else {
                            let ready9 = try await reactor.readable(number, deadline: .now + .seconds(5))
                            #expect(ready9)
                        }
                        reactor.forget(number)
                    }
                    #expect(tested, "the number was always taken by another test first")
                }
            }
        }
    }
}
