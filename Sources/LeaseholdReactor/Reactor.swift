import CLinux
import Foundation
import LeaseholdCore
import NIOConcurrencyHelpers

/// One thread that is both an I/O loop (`epoll` over file descriptors) and an executor for Swift
/// tasks, so that a task waiting for a socket, and the code that runs when the socket is ready,
/// stay on one thread with no hand-off.
///
/// Why: a blocking C client (libpq, hiredis) on a dispatch queue per connection costs every call
/// two thread wake-ups, one into the queue and one back to the cooperative pool; a busy worker
/// measured about 6.7 context switches per message, and most of its CPU in the scheduler. With
/// the connection in non-blocking mode and its socket on a reactor, a task that prefers the
/// reactor (`withTaskExecutorPreference(reactor)`) sends, awaits readability here
/// (``readable(_:)``), and is resumed by the loop in the same thread and loop turn — measured on
/// the development machine with 16 libpq connections: 0.34 context switches and 23 µs of client
/// CPU per query, against 3.38 and 65 µs for the dispatch-queue shape.
///
/// Rules:
/// - Jobs run in the order they were enqueued, one at a time, on the reactor's thread. A job must
///   not block: a blocking call here stalls every task and every socket of this reactor.
/// - A turn of the loop runs at most ``jobsPerTurn`` jobs, then polls the descriptors (without
///   sleeping when more jobs wait) and ends the waits whose deadline passed: jobs that keep coming
///   (a flood from other threads, a task that yields in a loop) delay I/O, never stop it.
/// - ``readable(_:)`` and ``writable(_:)`` may be awaited only by a task running on this reactor
///   (one that prefers it), and one wait per file descriptor at a time; the descriptor must stay
///   open until the wait ends.
/// - A wait ends when the descriptor is ready, or has an error or hang-up (the caller's next read
///   or write then reports it), or throws `CancellationError` when its task is cancelled, or
///   ``ReactorShutDownError`` once the reactor shuts down. A wait given a deadline
///   (``readable(_:deadline:)``, ``writable(_:deadline:)``) also ends when the deadline passes,
///   returning `false`: the loop sleeps no longer than until the nearest deadline, so a bounded
///   wait costs no timer and no extra task. A descriptor that is ready when its deadline is found
///   passed counts as ready (`true`): after a stall of the thread longer than the deadline, what
///   arrived meanwhile is read, not timed out.
/// - Shut it down (``shutDown()``) only after every task that prefers it has ended: a job
///   enqueued after the loop stopped never runs.
///
/// Registrations. A plain wait arms its descriptor for one event (`EPOLLONESHOT`), one
/// `epoll_ctl` per wait, which copes with anything: a descriptor closed behind the reactor's back
/// and its number reused is simply added again. A connection that waits for input over and over
/// on a socket it owns (a statement's result, the next replies) uses ``readableAgain(_:deadline:)``
/// instead: the socket stays registered for input (level-triggered) between waits, so a wait
/// that finds it so costs no system call. The owner's promises: ``adopt(_:)`` the socket once
/// it is open, ``forget(_:)`` it before closing it, and never wait on it once something else
/// (libpq, after a lost connection) has closed it. An input event that finds nobody waiting
/// removes the registration (one `epoll_ctl`; the next wait adds it again), so unread input
/// or a hang-up never makes the loop spin.
public final class Reactor: TaskExecutor, @unchecked Sendable {
    // @unchecked Sendable: `waits` and `registered` are touched only on the reactor's thread;
    // everything other threads touch is behind `state`'s lock or is immutable.

    /// What other threads hand to the loop.
    private struct State {
        var jobs: [UnownedJob] = []
        /// Closures to run on the loop (cancellations of waits).
        var calls: [@Sendable () -> Void] = []
        var sleeping = false
        var shutDown = false
    }

    private let state = NIOLockedValueBox(State())
    private let epoll: Int32
    /// The eventfd other threads write to wake the loop (internal: the tests look at its number).
    let wakeup: Int32
    private let label: String
    /// Set once by the thread itself before it runs anything.
    private let threadID = NIOLockedValueBox<pthread_t?>(nil)
    private let stopped = ConditionLock(value: false)

    /// Pending waits by descriptor (reactor thread only).
    private var waits: [Int32: Wait] = [:]
    /// Descriptors added to the epoll set (reactor thread only), and how: `true` when they stay
    /// registered for input between waits (``readableAgain(_:deadline:)``), `false` when armed
    /// one event at a time.
    private var registered: [Int32: Bool] = [:]

    private struct Wait {
        var id: UInt64
        var continuation: CheckedContinuation<Void, any Error>
        var deadline: ContinuousClock.Instant?
        var events: UInt32
    }
    private var nextWaitID: UInt64 = 0
    /// Pending waits with a deadline (reactor thread only): when 0, the loop skips the deadline scan.
    private var timedWaits = 0

    /// Jobs a turn runs at most before it polls I/O and ends passed deadlines (with more jobs
    /// waiting, the poll does not sleep). SwiftNIO's event loop takes its tasks in batches of the
    /// same size (`SelectableEventLoop.tasksCopyBatchSize`) and then selects without waiting.
    public static let jobsPerTurn = 4_096

    /// Ends a wait whose deadline passed; turned into `false` by the bounded waits.
    private struct DeadlinePassed: Error {}

    /// Starts the reactor's thread.
    public init(label: String = "leasehold.reactor") {
        self.label = label
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeup = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        precondition(epoll >= 0 && wakeup >= 0, "epoll_create1 or eventfd failed: errno \(errno)")
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = wakeup
        precondition(epoll_ctl(epoll, EPOLL_CTL_ADD, wakeup, &event) == 0, "epoll_ctl failed: errno \(errno)")
        let thread = Thread { [self] in run() }
        thread.name = label
        thread.start()
    }

    /// Whether the calling code runs on this reactor's thread.
    public var isCurrent: Bool {
        guard let id = threadID.withLockedValue({ $0 }) else { return false }
        return pthread_equal(id, pthread_self()) != 0
    }

    // MARK: TaskExecutor

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let wake = state.withLockedValue { state -> Bool in
            state.jobs.append(job)
            return state.sleeping
        }
        if wake { signal() }
    }

    // MARK: Readiness

    /// Waits until `descriptor` can be read (or has an error or hang-up).
    public func readable(_ descriptor: Int32) async throws {
        try await wait(for: descriptor, events: EPOLLIN.rawValue)
    }

    /// Waits until `descriptor` can be written (or has an error or hang-up).
    public func writable(_ descriptor: Int32) async throws {
        try await wait(for: descriptor, events: EPOLLOUT.rawValue)
    }

    /// Waits until `descriptor` can be read or written (or has an error or hang-up), whichever
    /// comes first: what libpq asks for while `PQflush` cannot send everything (the server may be
    /// waiting for its own output to be read before it reads more).
    public func readableOrWritable(_ descriptor: Int32) async throws {
        try await wait(for: descriptor, events: EPOLLIN.rawValue | EPOLLOUT.rawValue)
    }

    /// Waits until `descriptor` can be read (or has an error or hang-up), or until `deadline`:
    /// `true` when it is ready, `false` when the deadline came first (`nil`: no deadline).
    public func readable(_ descriptor: Int32, deadline: ContinuousClock.Instant?) async throws -> Bool {
        try await bounded(descriptor, events: EPOLLIN.rawValue, deadline: deadline)
    }

    /// Waits until `descriptor` can be written (or has an error or hang-up), or until `deadline`:
    /// `true` when it is ready, `false` when the deadline came first (`nil`: no deadline).
    public func writable(_ descriptor: Int32, deadline: ContinuousClock.Instant?) async throws -> Bool {
        try await bounded(descriptor, events: EPOLLOUT.rawValue, deadline: deadline)
    }

    /// Waits until `descriptor` can be read (or has an error or hang-up), or until `deadline`,
    /// as ``readable(_:deadline:)`` does, leaving the descriptor registered for input afterwards
    /// so that the next such wait needs no system call (see "Registrations" above for the
    /// owner's promises).
    public func readableAgain(_ descriptor: Int32, deadline: ContinuousClock.Instant? = nil) async throws -> Bool {
        try await bounded(descriptor, events: EPOLLIN.rawValue, deadline: deadline, staysRegistered: true)
    }

    /// Takes `descriptor`, newly opened, for ``readableAgain(_:deadline:)``: drops what the
    /// reactor remembers under its number from an earlier descriptor that was closed without
    /// ``forget(_:)`` (closing removed that one from the epoll set, so its registration would
    /// otherwise be taken for this one's). Reactor thread only, with no wait pending.
    public func adopt(_ descriptor: Int32) {
        precondition(isCurrent, "Reactor.adopt(_:) off the reactor's thread")
        precondition(waits[descriptor] == nil, "Reactor.adopt(_:) with a wait pending on \(descriptor)")
        if registered[descriptor] == true { registered[descriptor] = nil }
    }

    private func bounded(
        _ descriptor: Int32, events: UInt32, deadline: ContinuousClock.Instant?, staysRegistered: Bool = false
    ) async throws -> Bool {
        do {
            try await wait(for: descriptor, events: events, deadline: deadline, staysRegistered: staysRegistered)
            return true
        } catch is DeadlinePassed {
            return false
        }
    }

    /// Runs `body` on the reactor's thread after the jobs enqueued so far (and those they enqueue
    /// before the loop next sleeps; with more than ``jobsPerTurn`` of them waiting, after the
    /// turn's share of them): a place to do once what several of those jobs asked for, such as one
    /// `write` for every command they queued on a connection. Any thread.
    public func execute(afterPendingJobs body: @escaping @Sendable () -> Void) {
        call(body)
    }

    /// Forgets `descriptor` before its owner closes it (a closed descriptor leaves the epoll set by
    /// itself, but its number may be reused at once). Reactor thread only, with no wait pending.
    public func forget(_ descriptor: Int32) {
        precondition(isCurrent, "Reactor.forget(_:) off the reactor's thread")
        precondition(waits[descriptor] == nil, "Reactor.forget(_:) with a wait pending on \(descriptor)")
        if registered.removeValue(forKey: descriptor) != nil {
            epoll_ctl(epoll, EPOLL_CTL_DEL, descriptor, nil)
        }
    }

    /// Registers `descriptor` for `events` (`EPOLLONESHOT` unless it stays registered), adding
    /// or modifying as the epoll set turns out to hold it: a number the reactor remembers may
    /// have been closed behind its back (closing removes it from the set) and now name a new
    /// descriptor, and one it does not remember may still be in the set.
    private func register(_ descriptor: Int32, events: UInt32, staysRegistered: Bool) -> Int32 {
        var event = epoll_event()
        event.events = staysRegistered ? events : events | EPOLLONESHOT.rawValue
        event.data.fd = descriptor
        let operation = registered[descriptor] != nil ? EPOLL_CTL_MOD : EPOLL_CTL_ADD
        var outcome = epoll_ctl(epoll, operation, descriptor, &event)
        if outcome != 0 && errno == ENOENT && operation == EPOLL_CTL_MOD {
            outcome = epoll_ctl(epoll, EPOLL_CTL_ADD, descriptor, &event)
        } else if outcome != 0 && errno == EEXIST && operation == EPOLL_CTL_ADD {
            outcome = epoll_ctl(epoll, EPOLL_CTL_MOD, descriptor, &event)
        }
        if outcome == 0 { registered[descriptor] = staysRegistered }
        return outcome
    }

    private func wait(
        for descriptor: Int32, events: UInt32, deadline: ContinuousClock.Instant? = nil, staysRegistered: Bool = false
    ) async throws {
        precondition(isCurrent, "a readiness wait must run on its reactor (withTaskExecutorPreference)")
        precondition(waits[descriptor] == nil, "two waits on descriptor \(descriptor)")
        try Task.checkCancellation()
        if let deadline, deadline <= .now {
            // Late (the thread was held up), but what is there counts: see the type's rules.
            if Self.isReady(descriptor, events: events) { return }
            throw DeadlinePassed()
        }
        nextWaitID += 1
        let id = nextWaitID
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                if state.withLockedValue({ $0.shutDown }) {
                    continuation.resume(throwing: ReactorShutDownError())
                    return
                }
                // Already registered for input between waits: nothing to ask the kernel.
                if !(staysRegistered && registered[descriptor] == true) {
                    guard register(descriptor, events: events, staysRegistered: staysRegistered) == 0 else {
                        continuation.resume(throwing: ReactorError(operation: "epoll_ctl", errno: errno))
                        return
                    }
                }
                waits[descriptor] = Wait(id: id, continuation: continuation, deadline: deadline, events: events)
                if deadline != nil { timedWaits += 1 }
            }
        } onCancel: {
            // Any thread: the wait is ended on the loop, unless readiness ended it first.
            self.call { self.end(descriptor, id: id, with: CancellationError()) }
        }
    }

    /// Ends the wait `id` on `descriptor`, if it is still the pending one. Reactor thread only.
    private func end(_ descriptor: Int32, id: UInt64? = nil, with error: (any Error)? = nil) {
        guard let wait = waits[descriptor], id == nil || wait.id == id else { return }
        waits[descriptor] = nil
        if wait.deadline != nil { timedWaits -= 1 }
        if let error {
            // Disarm it, so a late readiness does not wake nobody: remove it from the set (the
            // next wait adds it again). Modifying it to no events would not do: the kernel
            // reports an error or hang-up whatever the mask, level-triggered, and a hung-up
            // descriptor left so would make the loop spin. (One that stays registered is left: an
            // event with nobody waiting removes it, see `readiness(of:)`.)
            if registered[descriptor] == false {
                registered[descriptor] = nil
                epoll_ctl(epoll, EPOLL_CTL_DEL, descriptor, nil)
            }
            wait.continuation.resume(throwing: error)
        } else {
            wait.continuation.resume()
        }
    }

    /// An event on `descriptor`: ends its wait; with none pending, a descriptor that stays
    /// registered leaves the epoll set (level-triggered, it would be reported again and again
    /// until read). Reactor thread only.
    private func readiness(of descriptor: Int32) {
        if waits[descriptor] != nil {
            end(descriptor)
        } else if registered[descriptor] == true {
            registered[descriptor] = nil
            epoll_ctl(epoll, EPOLL_CTL_DEL, descriptor, nil)
        }
    }

    // MARK: Shutdown

    /// Stops the loop: pending waits throw ``ReactorShutDownError``, jobs already enqueued run,
    /// and the thread exits. Returns once it has; must not be called on the reactor itself. Safe
    /// to call more than once, from any threads: only the first call wakes the loop, the others
    /// wait for the thread to exit (the wake-up descriptor is closed by then, and its number may
    /// name someone else's file).
    public func shutDown() {
        precondition(!isCurrent, "Reactor.shutDown() on its own thread would wait for itself")
        state.withLockedValue { state in
            guard !state.shutDown else { return }
            state.shutDown = true
            // Under the lock: the thread closes the descriptor only after it has seen `shutDown`,
            // that is after this.
            signal()
        }
        stopped.lock(whenValue: true)
        stopped.unlock()
    }

    // MARK: The loop

    /// How long the idle loop may sleep: until the nearest deadline (rounded up, so it never
    /// wakes just before it), or for ever (-1).
    private func sleepMilliseconds() -> Int32 {
        guard timedWaits > 0 else { return -1 }
        var nearest: ContinuousClock.Instant?
        for wait in waits.values {
            if let deadline = wait.deadline, nearest.map({ deadline < $0 }) ?? true { nearest = deadline }
        }
        guard let nearest else { return -1 }
        return Int32(clamping: max(0, ContinuousClock.now.duration(to: nearest).millisecondsRoundedUp))
    }

    /// Ends every wait whose deadline has passed (they return `false`, or `true` when the
    /// descriptor turns out ready after all), the earliest deadline first: waits whose deadlines
    /// passed in one turn (the thread was late) resume in order.
    private func endPassedDeadlines() {
        let now = ContinuousClock.now
        var passed: [(deadline: ContinuousClock.Instant, descriptor: Int32, id: UInt64, events: UInt32)] = []
        for (descriptor, wait) in waits {
            if let deadline = wait.deadline, deadline <= now {
                passed.append((deadline, descriptor, wait.id, wait.events))
            }
        }
        passed.sort { $0.deadline < $1.deadline }
        for wait in passed {
            // Readiness that came after this turn's epoll_wait still counts.
            let ready = Self.isReady(wait.descriptor, events: wait.events)
            end(wait.descriptor, id: wait.id, with: ready ? nil : DeadlinePassed())
        }
    }

    /// Whether `descriptor` is ready now for `events` (`EPOLLIN`, `EPOLLOUT`), or has an error
    /// or hang-up: one `poll` that does not wait.
    private static func isReady(_ descriptor: Int32, events: UInt32) -> Bool {
        var interest: Int16 = 0
        if events & EPOLLIN.rawValue != 0 { interest |= Int16(POLLIN) }
        if events & EPOLLOUT.rawValue != 0 { interest |= Int16(POLLOUT) }
        var entry = pollfd(fd: descriptor, events: interest, revents: 0)
        return poll(&entry, 1, 0) > 0
    }

    private func call(_ body: @escaping @Sendable () -> Void) {
        let wake = state.withLockedValue { state -> Bool in
            state.calls.append(body)
            return state.sleeping
        }
        if wake { signal() }
    }

    private func signal() {
        var one: UInt64 = 1
        _ = write(wakeup, &one, 8)
    }

    private func run() {
        threadID.withLockedValue { $0 = pthread_self() }
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        while true {
            // What was handed over, jobs first (they are what waits on the rest), up to
            // `jobsPerTurn` jobs: then I/O and deadlines get their turn even if jobs keep coming.
            var ran = 0
            while ran < Self.jobsPerTurn {
                let (jobs, calls) = state.withLockedValue { state in
                    let jobs: [UnownedJob]
                    if state.jobs.count <= Self.jobsPerTurn - ran {
                        jobs = state.jobs
                        state.jobs.removeAll(keepingCapacity: true)
                    } else {
                        jobs = Array(state.jobs.prefix(Self.jobsPerTurn - ran))
                        state.jobs.removeFirst(jobs.count)
                    }
                    defer { state.calls.removeAll(keepingCapacity: true) }
                    return (jobs, state.calls)
                }
                if jobs.isEmpty && calls.isEmpty { break }
                for job in jobs { job.runSynchronously(on: asUnownedTaskExecutor()) }
                for call in calls { call() }
                ran += jobs.count
            }
            let (idle, shutDown) = state.withLockedValue { state -> (Bool, Bool) in
                let idle = state.jobs.isEmpty && state.calls.isEmpty
                if idle && !state.shutDown { state.sleeping = true }
                return (idle, state.shutDown)
            }
            if shutDown && idle { break }
            let count = epoll_wait(epoll, &events, Int32(events.count), idle ? sleepMilliseconds() : 0)
            state.withLockedValue { $0.sleeping = false }
            for index in 0..<max(0, Int(count)) {
                let descriptor = events[index].data.fd
                if descriptor == wakeup {
                    var value: UInt64 = 0
                    _ = read(wakeup, &value, 8)
                } else {
                    readiness(of: descriptor)
                }
            }
            if timedWaits > 0 { endPassedDeadlines() }
        }
        for descriptor in Array(waits.keys) { end(descriptor, with: ReactorShutDownError()) }
        // Jobs that the failed waits resumed run before the thread goes.
        let jobs = state.withLockedValue { state in
            defer { state.jobs.removeAll() }
            return state.jobs
        }
        for job in jobs { job.runSynchronously(on: asUnownedTaskExecutor()) }
        close(wakeup)
        close(epoll)
        stopped.lock()
        stopped.unlock(withValue: true)
    }
}

/// The reactor shut down while a wait was pending.
public struct ReactorShutDownError: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "the reactor shut down" }
}

/// A system call of the reactor failed.
public struct ReactorError: Error, CustomStringConvertible {
    public var operation: String
    public var errno: Int32
    public init(operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }
    public var description: String { "\(operation) failed: \(String(cString: strerror(errno))) (errno \(errno))" }
}
