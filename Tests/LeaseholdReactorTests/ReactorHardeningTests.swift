import Foundation
import Synchronization
import Testing

@testable import LeaseholdReactor

/// Issue 25: a busy loop still polls I/O and ends deadlines.
@Suite("Reactor hardening", .timeLimit(.minutes(1)))
struct ReactorHardeningTests {
    /// A flag other threads set and read.
    final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        var isSet: Bool { value.load(ordering: .acquiring) }
        func set() { value.store(true, ordering: .releasing) }
    }

    /// Both ends of a pipe, each closed once.
    final class Ends: @unchecked Sendable {
        var read: Int32
        var write: Int32
        init() throws {
            var ends: [Int32] = [0, 0]
            guard pipe(&ends) == 0 else { throw ReactorError(operation: "pipe", errno: errno) }
            read = ends[0]
            write = ends[1]
        }
        func closeWrite() {
            if write >= 0 { close(write) }
            write = -1
        }
        deinit {
            close(read)
            closeWrite()
        }
    }

    @Test func aTaskThatYieldsForeverDoesNotKeepReadinessOrDeadlinesFromEndingWaits() async throws {
        let reactor = Reactor(label: "test.yielding")
        defer { reactor.shutDown() }
        let input = try Ends()
        let silent = try Ends()
        let stop = Flag()
        let readDone = Flag()
        let deadlineDone = Flag()
        let clock = ContinuousClock()
        let start = clock.now

        // Re-enqueues itself on the reactor for ever (until told to stop): the reactor always has
        // a job to run.
        let yielder = Task(executorPreference: reactor) { () -> Int in
            var yields = 0
            while !stop.isSet {
                await Task.yield()
                yields += 1
            }
            return yields
        }
        let reader = Task(executorPreference: reactor) { () -> Duration in
            defer { readDone.set() }
            try await reactor.readable(input.read)
            return clock.now - start
        }
        let bounded = Task(executorPreference: reactor) { () -> (Bool, Duration) in
            defer { deadlineDone.set() }
            let ready = try await reactor.readable(silent.read, deadline: start + .milliseconds(100))
            return (ready, clock.now - start)
        }
        try await Task.sleep(for: .milliseconds(50))
        var byte: UInt8 = 1
        _ = write(input.write, &byte, 1)

        // Give both waits up to 5 s, then stop the yielder whatever happened, so the test ends
        // either way (stuck waits end once the loop runs dry).
        while clock.now - start < .seconds(5) && !(readDone.isSet && deadlineDone.isSet) {
            try await Task.sleep(for: .milliseconds(10))
        }
        stop.set()
        let yields = await yielder.value
        let readAfter = try await reader.value
        let (ready, deadlineAfter) = try await bounded.value

        #expect(yields > 1_000, "the yielder kept the reactor busy throughout")
        #expect(readAfter < .seconds(4), "the readable wait ended \(readAfter) after the start")
        #expect(!ready)
        #expect(deadlineAfter < .seconds(4), "the 100 ms deadline ended its wait after \(deadlineAfter)")
    }
}
