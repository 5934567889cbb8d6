import CHiredis
import Foundation
import LeaseholdReactor

/// One hiredis connection (`redisContext`, RESP2) in non-blocking mode, driven by a ``Reactor``,
/// with every concurrent caller's commands pipelined on the one socket.
///
/// ## How a command travels
///
/// ``send(_:timeout:)`` appends the command to the context's output buffer
/// (`redisAppendCommandArgv`) and queues the caller for its reply. The buffer is written once per
/// reactor turn (``Reactor/execute(afterPendingJobs:)``), so every command queued by the jobs of
/// one turn leaves in one `write`; replies are read by one reader task, which is alive while
/// replies are outstanding, waits for the socket on the reactor, reads everything there is
/// (`redisBufferRead`) and hands each complete reply (`redisGetReplyFromReader`) to the caller
/// that is first in line (Redis answers in order). Sending, waiting and resuming the caller all
/// happen on the reactor's thread: no hand-off between threads, and one wake-up serves every
/// reply that arrived.
///
/// ## Thread and ownership rules
///
/// - Every method must be called on the connection's reactor (from a task that prefers it:
///   `withTaskExecutorPreference(reactor)`); each checks it with a precondition. That is what
///   makes the type safe to share (`Sendable`): its state is only ever touched on one thread.
/// - Any number of tasks may send at once; their commands are pipelined in the order they were
///   sent. A blocking command (`XREADGROUP … BLOCK`, `BLPOP`) holds up every command queued
///   behind it: give blocking reads a connection (a client) of their own.
/// - The connection owns its `redisContext` and frees it exactly once: in ``close()`` or after
///   an I/O error, as soon as neither the reader nor a pending write wait uses the socket any
///   more (its descriptors leave the reactor first, ``Reactor/forget(_:)``). A `dup` of the socket
///   is used for write waits, because the reactor allows one wait per descriptor and the reader
///   may be waiting for readability at the same time; it is closed with the context. Replies are
///   copied into ``RedisValue`` before `freeReplyObject`; argument buffers are pinned only for
///   the duration of `redisAppendCommandArgv`.
///
/// ## Failures and timeouts
///
/// hiredis documents a context as unusable after any I/O or protocol error, and a reply that
/// never came leaves the reply stream out of step, so either ends the connection: every command
/// still waiting gets a ``RedisError`` with source `.connection` (``RedisError/outcomeUnknown``:
/// it may have run), and ``isOpen`` turns `false` (``RedisClient`` opens a new connection for
/// the next command). Each command has a deadline (`timeout`, default the configuration's
/// `commandTimeout`); when the reply first in line is past its deadline the connection fails with
/// ``RedisError/Code/timeout`` for that command. Error replies (`-ERR …`) are not failures of the
/// connection: they are thrown to their own caller only.
///
/// ## Cancellation
///
/// A task that is already cancelled sends nothing: ``send(_:timeout:)`` throws
/// `CancellationError`. Once a command is queued, cancelling its task does not take it back (it
/// may be on the wire already, and other callers' replies follow it): the call still returns its
/// reply, or its error, within its timeout, so the caller learns what happened.
public final class RedisConnection: @unchecked Sendable {
    // @unchecked Sendable: every stored property is read and written only on `reactor`'s thread
    // (each entry point preconditions `reactor.isCurrent`; the flush runs there too).

    public let configuration: RedisConfiguration
    public let reactor: Reactor
    private var context: UnsafeMutablePointer<redisContext>?
    /// The socket hiredis reads and writes; readability waits use it.
    let socket: Int32
    /// `dup(socket)` (close-on-exec): writability waits use it (see the type's documentation).
    let writeSocket: Int32
    /// Callers waiting for replies, in the order their commands were queued.
    private var line = Line<Waiter>()
    /// Queued commands whose timeout is not the default: deadlines are then not in line order.
    private var customDeadlines = 0
    /// Commands in line (a pipeline counts each) and the bytes of their arguments: bounded by
    /// the configuration's `maxQueuedCommands` and `maxQueuedBytes` (backpressure).
    private var queuedCommands = 0
    private var queuedBytes = 0
    /// The reader task runs.
    private var reading = false
    private var reader: Task<Void, Never>?
    /// A flush is scheduled for the end of this reactor turn.
    private var flushScheduled = false
    /// A task waits for the socket to take the rest of the output buffer.
    private var writer: Task<Void, Never>?
    /// Set once the connection failed or was closed; every later command gets it.
    private var failure: RedisError?
    /// The replies so far of the pipeline first in line.
    private var headReplies: [RedisValue] = []

    /// One caller waiting for a reply (or, for a pipeline, for several).
    private struct Waiter {
        let command: String
        let deadline: ContinuousClock.Instant
        let customDeadline: Bool
        let receiver: Receiver
        let commands: Int
        let bytes: Int
    }

    private enum Receiver {
        case one(CheckedContinuation<RedisValue, any Error>)
        /// A pipeline: one reply per command, gathered in `headReplies` while it is first in line
        /// (the commands name the one a failure leaves without its reply).
        case many(CheckedContinuation<[RedisValue], any Error>, commands: [RedisCommand])
    }

    init(configuration: RedisConfiguration, reactor: Reactor, context: UnsafeMutablePointer<redisContext>) {
        self.configuration = configuration
        self.reactor = reactor
        self.context = context
        self.socket = lh_redis_fd(context)
        // Close-on-exec, as the socket itself (see `connect`): a child process (`leasehold local`
        // and `demo` start several) must not inherit the connection.
        self.writeSocket = fcntl(lh_redis_fd(context), F_DUPFD_CLOEXEC, 0)
    }

    deinit {
        // Only reached with no reader or writer task (each holds the connection). Off the
        // reactor's thread the descriptors cannot be forgotten first; closing them removes them
        // from the epoll set all the same, and the reactor copes with a reused number.
        if let context {
            if reactor.isCurrent {
                reactor.forget(socket)
                reactor.forget(writeSocket)
            }
            if writeSocket >= 0 { Foundation.close(writeSocket) }
            redisFree(context)
        }
    }

    // MARK: State

    /// Whether commands can be sent: not closed, and no I/O error, protocol error or timeout yet.
    public var isOpen: Bool {
        precondition(reactor.isCurrent, "RedisConnection.isOpen off its reactor's thread")
        return failure == nil
    }

    /// Callers waiting for replies.
    public var outstanding: Int {
        precondition(reactor.isCurrent, "RedisConnection.outstanding off its reactor's thread")
        return line.count
    }

    /// Whether the connection is still usable before a command is sent on it. An idle RESP2
    /// connection has nothing to read, so a readable or hung-up socket with nothing outstanding
    /// means the server closed it (a restart, `CLIENT KILL`, a timeout on the server): the
    /// connection is failed and closed here, so the caller opens a new one instead of learning it
    /// from an "unknown outcome" of its own command.
    public func isReusable() -> Bool {
        precondition(reactor.isCurrent, "RedisConnection.isReusable() off its reactor's thread")
        guard failure == nil else { return false }
        guard line.count == 0, !reading else { return true }
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        if poll(&descriptor, 1, 0) != 0 {
            fail(RedisError(source: .connection, code: .io, message: "the server closed the idle connection"))
            return false
        }
        return true
    }

    /// Closes the connection: every caller still waiting gets a connection error (the outcome of
    /// its command is unknown), and the context is freed as soon as no wait uses its socket.
    /// Safe to call twice. Reactor thread only.
    public func close() {
        precondition(reactor.isCurrent, "RedisConnection.close() off its reactor's thread")
        fail(RedisError(source: .connection, code: .io, message: "the connection was closed"))
    }

    // MARK: Commands

    /// Sends one command and waits for its reply, pipelined with whatever else this connection
    /// carries.
    ///
    /// - Parameter timeout: bound on the reply (for blocking commands such as
    ///   `XREADGROUP BLOCK`, pass more than the block time); `nil` uses the configured
    ///   `commandTimeout`.
    /// - Throws: ``RedisError`` with source `.server` for an error reply (the connection stays
    ///   usable), `.connection` for I/O errors and timeouts (the connection is failed);
    ///   `CancellationError` when the task was cancelled before the command was queued.
    @discardableResult
    public func send(_ command: RedisCommand, timeout: Duration? = nil) async throws -> RedisValue {
        precondition(reactor.isCurrent, "RedisConnection.send off its reactor's thread")
        try Task.checkCancellation()
        let value = try await withCheckedThrowingContinuation {
            (continuation: CheckedContinuation<RedisValue, any Error>) in
            if let error = queue([command], timeout: timeout, receiver: .one(continuation)) {
                continuation.resume(throwing: error)
            }
        }
        if case .error(var error) = value {
            error.command = command.name
            throw error
        }
        return value
    }

    /// Sends one command given as arguments.
    @discardableResult
    public func send(_ arguments: any RedisArgument...) async throws -> RedisValue {
        try await send(RedisCommand(arguments))
    }

    /// Queues every command back to back (no other caller's command comes between them) and
    /// returns their replies in order, error replies in place as ``RedisValue/error(_:)``.
    ///
    /// - Parameter timeout: bound on the last reply; `nil` uses the configured `commandTimeout`.
    /// - Throws: ``RedisError`` (source `.connection`) when the connection fails before every
    ///   reply arrived: the outcome of each command is then unknown. `CancellationError` when
    ///   the task was cancelled before anything was queued.
    public func pipeline(_ commands: [RedisCommand], timeout: Duration? = nil) async throws -> [RedisValue] {
        precondition(reactor.isCurrent, "RedisConnection.pipeline off its reactor's thread")
        guard !commands.isEmpty else { return [] }
        try Task.checkCancellation()
        let values = try await withCheckedThrowingContinuation {
            (continuation: CheckedContinuation<[RedisValue], any Error>) in
            if let error = queue(commands, timeout: timeout, receiver: .many(continuation, commands: commands)) {
                continuation.resume(throwing: error)
            }
        }
        return zip(commands, values).map { command, value in
            guard case .error(var error) = value else { return value }
            error.command = command.name
            return .error(error)
        }
    }

    /// Runs a Lua script by SHA (`EVALSHA`), loading it first if this server does not have it
    /// (`NOSCRIPT` after a restart or `SCRIPT FLUSH`), then `EVAL` if it was flushed once more in
    /// between.
    @discardableResult
    public func evaluate(
        _ script: RedisScript, keys: [any RedisArgument] = [], arguments: [any RedisArgument] = []
    ) async throws -> RedisValue {
        try await RedisScriptRunner.evaluate(script, keys: keys, arguments: arguments) { command in
            try await self.send(command)
        }
    }

    // MARK: Private

    /// Appends `commands` to the output buffer and puts `receiver` in line; returns the error to
    /// throw instead when nothing could be queued.
    private func queue(_ commands: [RedisCommand], timeout: Duration?, receiver: Receiver) -> RedisError? {
        guard failure == nil, let context else {
            var error = failure ?? RedisError(source: .connection, code: .io, message: "the connection was closed")
            // Nothing was sent.
            error.code = .connect
            error.command = commands.first?.name
            return error
        }
        // Backpressure: refuse at once, nothing sent, rather than queue without limit. One
        // command (or pipeline) is always taken when the line is empty, whatever its size.
        let bytes = commands.reduce(0) { total, command in
            command.arguments.reduce(total) { $0 + $1.count + 16 }
        }
        if queuedCommands > 0
            && (queuedCommands + commands.count > configuration.maxQueuedCommands
                || queuedBytes + bytes > configuration.maxQueuedBytes)
        {
            return RedisError(
                source: .connection, code: .backlog,
                message:
                    "\(queuedCommands) commands (\(queuedBytes) bytes) already wait for replies on this connection; refused, nothing sent",
                command: commands.first?.name)
        }
        for command in commands {
            let status = withArgv(command.arguments) { argc, argv, lengths in
                redisAppendCommandArgv(context, argc, argv, lengths)
            }
            guard status == lh_redis_ok() else {
                // Out of memory in hiredis. What was appended already would go out without a
                // caller to read its reply: the connection cannot be kept in step.
                let error = RedisError(
                    source: .connection, code: .io, message: "hiredis could not buffer the command",
                    command: command.name)
                fail(error)
                return error
            }
        }
        let custom = timeout != nil && timeout != configuration.commandTimeout
        if custom { customDeadlines += 1 }
        queuedCommands += commands.count
        queuedBytes += bytes
        line.append(
            Waiter(
                command: commands[0].name, deadline: .now + (timeout ?? configuration.commandTimeout),
                customDeadline: custom, receiver: receiver, commands: commands.count, bytes: bytes))
        if !flushScheduled && writer == nil {
            flushScheduled = true
            reactor.execute(afterPendingJobs: { [self] in flush() })
        }
        if !reading {
            reading = true
            reader = Task(executorPreference: reactor) { [self] in await read() }
        }
        return nil
    }

    /// Writes the output buffer (end of a reactor turn). What the socket does not take at once is
    /// written by a task that waits for writability.
    private func flush() {
        flushScheduled = false
        guard failure == nil, let context, writer == nil else { return }
        var done: Int32 = 0
        guard redisBufferWrite(context, &done) == lh_redis_ok() else {
            fail(ioFailure(context))
            return
        }
        if done == 0 {
            writer = Task(executorPreference: reactor) { [self] in await writeRest() }
        }
    }

    private func writeRest() async {
        defer {
            writer = nil
            releaseIfUnused()
        }
        while failure == nil, let context {
            do {
                try await reactor.writable(writeSocket)
            } catch {
                // Cancelled because the connection failed, or the reactor shut down.
                fail(RedisError(source: .connection, code: .io, message: "waiting to write failed: \(error)"))
                return
            }
            guard failure == nil else { return }
            var done: Int32 = 0
            guard redisBufferWrite(context, &done) == lh_redis_ok() else {
                fail(ioFailure(context))
                return
            }
            if done != 0 { return }
        }
    }

    /// The reader: hands out every complete reply, waits for more while callers wait, ends when
    /// none does (the next command starts a new one).
    private func read() async {
        defer {
            reading = false
            reader = nil
            releaseIfUnused()
        }
        while failure == nil, let context {
            guard handOutReplies(context) else { return }
            guard line.count > 0 else { return }
            let deadline = nearestDeadline()
            let ready: Bool
            do {
                ready = try await reactor.readableAgain(socket, deadline: deadline)
            } catch {
                // Cancelled because the connection failed or closed, or the reactor shut down.
                fail(RedisError(source: .connection, code: .io, message: "waiting for replies failed: \(error)"))
                return
            }
            guard failure == nil else { return }
            guard ready else {
                timeOut()
                return
            }
            guard redisBufferRead(context) == lh_redis_ok() else {
                fail(ioFailure(context))
                return
            }
        }
    }

    /// Gives every complete reply in hiredis's read buffer to its caller; `false` when the
    /// connection failed (a protocol error, or a reply nobody waits for).
    private func handOutReplies(_ context: UnsafeMutablePointer<redisContext>) -> Bool {
        while true {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReplyFromReader(context, &raw) == lh_redis_ok() else {
                fail(ioFailure(context))
                return false
            }
            guard let reply = raw else { return true }
            let value = RedisReply.copy(reply.assumingMemoryBound(to: redisReply.self))
            freeReplyObject(reply)
            guard let waiter = line.first else {
                fail(
                    RedisError(source: .connection, code: .proto, message: "a reply arrived that no command asked for"))
                return false
            }
            switch waiter.receiver {
            case .one(let continuation):
                finish(line.removeFirst())
                continuation.resume(returning: value)
            case .many(let continuation, let commands):
                headReplies.append(value)
                if headReplies.count == commands.count {
                    finish(line.removeFirst())
                    let values = headReplies
                    headReplies = []
                    continuation.resume(returning: values)
                }
            }
        }
    }

    private func finish(_ waiter: Waiter) {
        if waiter.customDeadline { customDeadlines -= 1 }
        queuedCommands -= waiter.commands
        queuedBytes -= waiter.bytes
    }

    /// The earliest deadline of the callers in line: the first one's, unless some have their own
    /// timeout (then the line is searched).
    private func nearestDeadline() -> ContinuousClock.Instant? {
        guard customDeadlines > 0 else { return line.first?.deadline }
        var nearest: ContinuousClock.Instant?
        line.forEach { waiter in
            if nearest.map({ waiter.deadline < $0 }) ?? true { nearest = waiter.deadline }
        }
        return nearest
    }

    /// A deadline passed with replies outstanding: the connection can no longer be trusted to be
    /// in step, so it fails; the callers past their deadline get ``RedisError/Code/timeout``.
    private func timeOut() {
        let now = ContinuousClock.now
        var expired: Set<Int> = []
        var position = 0
        line.forEach { waiter in
            if waiter.deadline <= now { expired.insert(position) }
            position += 1
        }
        fail(
            RedisError(
                source: .connection, code: .io,
                message: "the connection was closed after another command's reply did not come in time"),
            timedOut: expired)
    }

    /// Fails the connection once: every caller in line gets `error` (those at the positions in
    /// `timedOut` a timeout instead), the reader and any write wait are ended, and the context
    /// is freed when neither uses it any more.
    private func fail(_ error: RedisError, timedOut: Set<Int> = []) {
        guard failure == nil else { return }
        failure = error
        let waiting = line.removeAll()
        customDeadlines = 0
        queuedCommands = 0
        queuedBytes = 0
        let gathered = headReplies.count
        headReplies = []
        for (position, waiter) in waiting.enumerated() {
            var error = error
            if timedOut.contains(position) {
                error.code = .timeout
                error.message = "no reply within the command's timeout"
            }
            error.command = waiter.command
            switch waiter.receiver {
            case .one(let continuation): continuation.resume(throwing: error)
            case .many(let continuation, let commands):
                // The first in line had some replies already: name the command still waiting.
                if position == 0, gathered < commands.count { error.command = commands[gathered].name }
                continuation.resume(throwing: error)
            }
        }
        reader?.cancel()
        writer?.cancel()
        releaseIfUnused()
    }

    /// Frees the context once the connection failed and no task waits on its socket.
    private func releaseIfUnused() {
        guard failure != nil, !reading, writer == nil, let context else { return }
        reactor.forget(socket)
        if writeSocket >= 0 {
            reactor.forget(writeSocket)
            Foundation.close(writeSocket)
        }
        redisFree(context)
        self.context = nil
    }

    /// The error for a failed read, write or parse.
    private func ioFailure(_ context: UnsafeMutablePointer<redisContext>) -> RedisError {
        let err = lh_redis_err(context)
        var message = String(cString: lh_redis_errstr(context))
        if message.isEmpty { message = "connection lost" }
        return RedisError(source: .connection, code: err == REDIS_ERR_PROTOCOL ? .proto : .io, message: message)
    }
}

/// The callers waiting for replies, first in line first: an array with a moving head, so taking
/// the first is O(1) and a busy connection reuses its storage.
private struct Line<Element> {
    private var storage: [Element] = []
    private var head = 0

    var count: Int { storage.count - head }
    var first: Element? { head < storage.count ? storage[head] : nil }

    mutating func append(_ element: Element) {
        storage.append(element)
    }

    mutating func removeFirst() -> Element {
        let element = storage[head]
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1_024, head * 2 >= storage.count {
            // A line that never empties: drop the served prefix now and then.
            storage.removeFirst(head)
            head = 0
        }
        return element
    }

    mutating func removeAll() -> ArraySlice<Element> {
        let rest = storage[head...]
        storage = []
        head = 0
        return rest
    }

    func forEach(_ body: (Element) -> Void) {
        for index in head..<storage.count { body(storage[index]) }
    }
}
