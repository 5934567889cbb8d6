import Testing

@testable import LeaseholdWorker

extension UnitTests {
    /// The worker read loop's decisions, without Redis or a clock: when it reads, how many entries it
    /// asks for, when it waits for more slots to free up, and how it backs off after failed reads.
    @Suite("worker read pacing")
    struct ReadPacingTests {
        static let start = ContinuousClock.now

        @Test func anIdleWorkerReadsEverySlotAndABusyOneWaits() {
            var pacing = ReadPacing(concurrency: 16, coalescing: .milliseconds(2))
            #expect(pacing.enough == 4)
            #expect(pacing.next(inFlight: 0, now: Self.start) == .read(count: 16))
            #expect(pacing.next(inFlight: 16, now: Self.start) == .waitForAnEntry)
            // A quarter of the slots free is enough to read at once.
            #expect(pacing.next(inFlight: 12, now: Self.start) == .read(count: 4))
        }

        @Test func fewFreeSlotsWaitUpToTheCoalescingTimeThenReadWhatIsFree() {
            var pacing = ReadPacing(concurrency: 16, coalescing: .milliseconds(2))
            let until = Self.start + .milliseconds(2)
            #expect(pacing.next(inFlight: 14, now: Self.start) == .startCoalescing(until: until))
            // Woken before the end (an entry finished, still too few free): keep waiting, no new timer.
            #expect(pacing.next(inFlight: 14, now: Self.start + .milliseconds(1)) == .keepCoalescing)
            #expect(pacing.next(inFlight: 13, now: Self.start + .milliseconds(1)) == .keepCoalescing)
            // The wait is over: read what is free, and the next shortage starts a new wait.
            #expect(pacing.next(inFlight: 13, now: until) == .read(count: 3))
            #expect(pacing.coalescingUntil == nil)
            #expect(pacing.next(inFlight: 15, now: until) == .startCoalescing(until: until + .milliseconds(2)))
        }

        @Test func enoughFreeSlotsEndTheCoalescingWaitEarly() {
            var pacing = ReadPacing(concurrency: 16, coalescing: .milliseconds(2))
            _ = pacing.next(inFlight: 15, now: Self.start)
            #expect(pacing.next(inFlight: 10, now: Self.start) == .read(count: 6))
            #expect(pacing.coalescingUntil == nil)
        }

        @Test func withNothingInFlightEvenOneFreeSlotIsRead() {
            // concurrency 1..3: a quarter rounds to 1 slot, and an idle worker never coalesces.
            var one = ReadPacing(concurrency: 1, coalescing: .milliseconds(2))
            #expect(one.next(inFlight: 0, now: Self.start) == .read(count: 1))
            #expect(one.next(inFlight: 1, now: Self.start) == .waitForAnEntry)
            var three = ReadPacing(concurrency: 3, coalescing: .milliseconds(2))
            #expect(three.next(inFlight: 2, now: Self.start) == .read(count: 1))
        }

        @Test func failedReadsBackOffDoublingUpToFiveSecondsAndASuccessStartsAgain() {
            var pacing = ReadPacing(concurrency: 4, coalescing: .milliseconds(2))
            let waits = (0..<8).map { _ in pacing.readFailed() }
            #expect(
                waits == [200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000].map { Duration.milliseconds($0) })
            pacing.readSucceeded()
            #expect(pacing.failures == 0)
            #expect(pacing.readFailed() == .milliseconds(200))
        }
    }
}
