import LeaseholdReactor

/// What the cluster routing needs of the client that reaches one node: a ``RedisClient``
/// (non-blocking connections on a reactor) for ``RedisClusterClient``.
protocol RedisClusterNode: Sendable {
    func send(_ command: RedisCommand, timeout: Duration?) async throws -> RedisValue
    /// Every command back to back on one connection; replies in order, error replies in place.
    func pipeline(_ commands: [RedisCommand], timeout: Duration?) async throws -> [RedisValue]
    func evaluate(_ script: RedisScript, keys: [any RedisArgument], arguments: [any RedisArgument]) async throws
        -> RedisValue
    /// `ASKING`, then `command` right behind it on the same connection (`ASKING` holds for the next
    /// command of its connection only); returns the command's reply, throws its error reply.
    func sendAsking(_ command: RedisCommand, timeout: Duration?) async throws -> RedisValue
    func close() async
}

extension RedisClient: RedisClusterNode {
    func sendAsking(_ command: RedisCommand, timeout: Duration?) async throws -> RedisValue {
        // A pipeline's commands go back to back on one connection: nothing comes between them.
        let replies = try await pipeline([RedisCommand("ASKING"), command], timeout: timeout)
        if case .error(let error) = replies[1] { throw error }
        return replies[1]
    }
}

/// The mutable state of a cluster client: its slot map, one client per node, the map read in
/// progress.
struct RedisClusterState<Node: RedisClusterNode>: Sendable {
    var map: RedisClusterMap?
    var nodes: [RedisNodeAddress: Node] = [:]
    var refreshing = false
    var refreshWaiters: [CheckedContinuation<Void, Never>] = []
    var refreshes = 0
    var lastRefresh: ContinuousClock.Instant?
    var closed = false
}

/// Where a ``RedisClusterRouter`` keeps its ``RedisClusterState``: on a reactor's thread (no lock).
protocol RedisClusterStateStorage<Node>: Sendable {
    associatedtype Node: RedisClusterNode
    /// Runs `body` with exclusive access to the state. `body` must not call `withState` again.
    func withState<T>(_ body: (inout RedisClusterState<Node>) throws -> T) rethrows -> T
}

/// State touched only on one reactor's thread, checked by a precondition: no lock.
final class ReactorClusterState<Node: RedisClusterNode>: RedisClusterStateStorage, @unchecked Sendable {
    // @unchecked Sendable: `state` is read and written only on `reactor`'s thread (preconditioned).
    let reactor: Reactor
    private var state = RedisClusterState<Node>()

    init(reactor: Reactor) {
        self.reactor = reactor
    }

    func withState<T>(_ body: (inout RedisClusterState<Node>) throws -> T) rethrows -> T {
        precondition(reactor.isCurrent, "RedisClusterClient used off its reactor's thread")
        return try body(&state)
    }
}

/// The cluster routing: keys to slot, slot to master, `MOVED` / `ASK` / `TRYAGAIN` /
/// `CLUSTERDOWN` handling with bounded retries, the slot map and its refreshes, and one client per
/// node. ``RedisClusterClient`` documents the behaviour; this type implements it.
final class RedisClusterRouter<Storage: RedisClusterStateStorage>: Sendable {
    typealias Node = Storage.Node

    let configuration: RedisConfiguration
    let maxRedirects: Int
    let mapRefreshInterval: Duration
    private let storage: Storage
    /// Makes the client for one node from that node's configuration.
    private let makeNode: @Sendable (RedisConfiguration) -> Node

    init(
        configuration: RedisConfiguration, maxRedirects: Int, mapRefreshInterval: Duration, storage: Storage,
        makeNode: @escaping @Sendable (RedisConfiguration) -> Node
    ) {
        self.configuration = configuration
        self.maxRedirects = maxRedirects
        self.mapRefreshInterval = mapRefreshInterval
        self.storage = storage
        self.makeNode = makeNode
    }

    /// The checks both clients' initializers make.
    static func validate(configuration: RedisConfiguration, connections: Int, maxRedirects: Int) throws(RedisError) {
        guard configuration.database == 0 else {
            throw RedisError(
                source: .client, code: .invalidInput,
                message: "database \(configuration.database): a Redis Cluster has only database 0")
        }
        guard connections >= 1, maxRedirects >= 1 else {
            throw RedisError(
                source: .client, code: .invalidInput,
                message: "a cluster client needs at least one connection per node and maxRedirects ≥ 1")
        }
    }

    // MARK: Commands

    func send(_ command: RedisCommand, timeout: Duration?) async throws -> RedisValue {
        let keys = try RedisClusterKeys.keys(of: command)
        return try await send(command, slot: RedisClusterKeys.slot(of: keys, command: command.name), timeout: timeout)
    }

    func send(_ command: RedisCommand, keys: [any RedisArgument], timeout: Duration?) async throws -> RedisValue {
        let slot = try RedisClusterKeys.slot(of: keys.map(\.redisBytes), command: command.name)
        return try await send(command, slot: slot, timeout: timeout)
    }

    func evaluate(_ script: RedisScript, keys: [any RedisArgument], arguments: [any RedisArgument]) async throws
        -> RedisValue
    {
        let keys = keys.map(\.redisBytes)
        let arguments = arguments.map(\.redisBytes)
        let slot = try RedisClusterKeys.slot(of: keys, command: "EVALSHA")
        return try await run(slot: slot, command: "EVALSHA") { node, asking in
            guard asking else { return try await node.evaluate(script, keys: keys, arguments: arguments) }
            // `ASKING` holds for the next command only, so a `SCRIPT LOAD` in between would spend
            // it: send the source itself when this node lacks the script.
            let keyArguments: [any RedisArgument] = keys
            let tail: [any RedisArgument] = [keys.count] + keyArguments + arguments
            if let sha = script.sha {
                do {
                    return try await node.sendAsking(RedisCommand(["EVALSHA", sha] + tail), timeout: nil)
                } catch let error as RedisError where error.code == .noScript {
                    // fall through to EVAL
                }
            }
            return try await node.sendAsking(RedisCommand(["EVAL", script.source] + tail), timeout: nil)
        }
    }

    /// Every command back to back on one connection of the master serving `keys`' slot, whatever
    /// the commands' own keys; replies in place, redirects among them not followed.
    func pipeline(_ commands: [RedisCommand], routedBy keys: [any RedisArgument], timeout: Duration?) async throws
        -> [RedisValue]
    {
        guard !commands.isEmpty else { return [] }
        let slot = try RedisClusterKeys.slot(of: keys.map(\.redisBytes), command: commands[0].name)
        return try await run(slot: slot, command: commands[0].name) { node, _ in
            // `run` sees an ASK only as a thrown error, and a pipeline returns error replies in
            // place: `asking` is never true here.
            try await node.pipeline(commands, timeout: timeout)
        }
    }

    func pipeline(_ commands: [RedisCommand], timeout: Duration?) async throws -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        var slots: [Int?] = []
        for command in commands {
            slots.append(try RedisClusterKeys.slot(of: RedisClusterKeys.keys(of: command), command: command.name))
        }
        var batches: [RedisNodeAddress: [Int]] = [:]
        for (index, slot) in slots.enumerated() {
            batches[try await node(serving: slot), default: []].append(index)
        }
        var replies = [RedisValue](repeating: .null, count: commands.count)
        var again: [Int] = []
        var failure: (any Error)?
        func take(_ node: RedisNodeAddress, _ indices: [Int], _ result: Result<[RedisValue], any Error>) async {
            switch result {
            case .success(let values):
                for (index, value) in zip(indices, values) {
                    replies[index] = value
                    guard case .error(let error) = value else { continue }
                    if let redirect = RedisClusterRedirect(error, from: node) {
                        if redirect.kind == .moved { await followMoved(redirect) }
                        again.append(index)
                    } else if error.code == .tryAgain || error.code == .clusterDown {
                        again.append(index)
                    }
                }
            case .failure(let error as RedisError) where error.source == .connection && error.code == .connect:
                again += indices  // nothing of this batch was sent
            case .failure(let error):
                failure = failure ?? error
            }
        }
        if batches.count == 1, let batch = batches.first {
            // One node (the usual case: one hash tag): no child task.
            let (node, indices) = (batch.key, batch.value)
            let result: Result<[RedisValue], any Error>
            do {
                result = .success(try await client(for: node).pipeline(commands, timeout: timeout))
            } catch {
                result = .failure(error)
            }
            await take(node, indices, result)
        } else {
            try await withThrowingTaskGroup(of: (RedisNodeAddress, [Int], Result<[RedisValue], any Error>).self) {
                group in
                for (node, indices) in batches {
                    let client = try client(for: node)
                    let batch = indices.map { commands[$0] }
                    // Child tasks inherit the caller's task executor preference: on a reactor,
                    // every batch is queued there and they leave in one turn.
                    group.addTask {
                        do {
                            return (node, indices, .success(try await client.pipeline(batch, timeout: timeout)))
                        } catch {
                            return (node, indices, .failure(error))
                        }
                    }
                }
                for try await (node, indices, result) in group {
                    await take(node, indices, result)
                }
            }
        }
        if let failure {
            if let error = failure as? RedisError, error.source == .connection { await refreshQuietly(preferring: nil) }
            throw failure
        }
        for index in again.sorted() {
            do {
                replies[index] = try await send(commands[index], slot: slots[index], timeout: timeout)
            } catch let error as RedisError where error.source != .connection {
                replies[index] = .error(error)
            }
        }
        return replies
    }

    // MARK: Slot map

    var map: RedisClusterMap? {
        storage.withState { $0.map }
    }

    var mapRefreshes: Int {
        storage.withState { $0.refreshes }
    }

    func master(forSlot slot: Int) async throws -> RedisNodeAddress {
        try await node(serving: slot)
    }

    func refreshMap() async throws {
        try await refresh(preferring: nil)
    }

    /// Marks the router closed and hands over every node's client, for the caller to close.
    func detachNodes() -> [Node] {
        storage.withState { state in
            state.closed = true
            defer { state.nodes.removeAll() }
            return Array(state.nodes.values)
        }
    }

    func close() async {
        for node in detachNodes() { await node.close() }
    }

    // MARK: Routing

    private func send(_ command: RedisCommand, slot: Int?, timeout: Duration?) async throws -> RedisValue {
        try await run(slot: slot, command: command.name) { node, asking in
            guard asking else { return try await node.send(command, timeout: timeout) }
            return try await node.sendAsking(command, timeout: timeout)
        }
    }

    /// Runs `operation` on the client of the node serving `slot` (any master for `nil`), following
    /// redirects and retrying as ``RedisClusterClient``'s documentation says.
    private func run<T: Sendable>(
        slot: Int?, command: String, _ operation: (Node, _ asking: Bool) async throws -> T
    ) async throws -> T {
        var askNode: RedisNodeAddress?
        var tries = 0
        while true {
            tries += 1
            var node: RedisNodeAddress?
            do {
                let target: RedisNodeAddress
                if let askNode { target = askNode } else { target = try await self.node(serving: slot) }
                node = target
                let asking = askNode != nil
                askNode = nil
                return try await operation(try client(for: target), asking)
            } catch let error as RedisError {
                if let node, let redirect = RedisClusterRedirect(error, from: node) {
                    guard tries <= maxRedirects else {
                        throw RedisError(
                            source: .client, code: .tooManyRedirects,
                            message: "gave up after \(tries) tries; last reply: \(error.message)", command: command)
                    }
                    switch redirect.kind {
                    case .moved: await followMoved(redirect)
                    case .ask: askNode = redirect.node
                    }
                    continue
                }
                let retryable =
                    error.source == .server && (error.code == .tryAgain || error.code == .clusterDown)
                    || error.source == .connection && error.code == .connect
                guard retryable else {
                    if error.source == .connection { await refreshQuietly(preferring: nil) }
                    throw error
                }
                guard tries <= maxRedirects else { throw error }
                if error.code != .tryAgain { await refreshQuietly(preferring: nil) }
                try await Task.sleep(for: .milliseconds(min(50 << (tries - 1), 1000)))
            }
        }
    }

    /// The master serving `slot`, or any master for `nil`; reads the map when there is none or
    /// when it has no master for the slot.
    private func node(serving slot: Int?) async throws -> RedisNodeAddress {
        var map = try await currentMap()
        if let slot, map.master(forSlot: slot) == nil {
            try await refresh(preferring: nil)
            map = try await currentMap()
        }
        guard let slot else {
            guard let any = map.masters.randomElement() else { throw noMaster("any slot") }
            return any
        }
        guard let master = map.master(forSlot: slot) else { throw noMaster("slot \(slot)") }
        return master
    }

    private func noMaster(_ what: String) -> RedisError {
        RedisError(source: .server, code: .clusterDown, message: "CLUSTERDOWN no node serves \(what) in the slot map")
    }

    private func currentMap() async throws -> RedisClusterMap {
        if let map = self.map { return map }
        try await refresh(preferring: nil)
        guard let map = self.map else {
            throw RedisError(
                source: .connection, code: .connect,
                message: "no slot map for \(configuration.redactedURL): no node answered CLUSTER SLOTS")
        }
        return map
    }

    /// Patches the map for a `MOVED` and reads the whole map from the new owner if the last
    /// read is older than `mapRefreshInterval`.
    private func followMoved(_ redirect: RedisClusterRedirect) async {
        let interval = mapRefreshInterval
        let stale = storage.withState { state -> Bool in
            state.map = state.map?.moving(slot: redirect.slot, to: redirect.node)
            guard let last = state.lastRefresh else { return true }
            return ContinuousClock.now - last >= interval
        }
        if stale { await refreshQuietly(preferring: redirect.node) }
    }

    private func refreshQuietly(preferring node: RedisNodeAddress?) async {
        try? await refresh(preferring: node)
    }

    private func refresh(preferring preferred: RedisNodeAddress?) async throws {
        let isReader = storage.withState { state -> Bool in
            if state.refreshing { return false }
            state.refreshing = true
            return true
        }
        guard isReader else {
            // Another task is reading the map: wait for it.
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let waiting = storage.withState { state -> Bool in
                    guard state.refreshing else { return false }
                    state.refreshWaiters.append(continuation)
                    return true
                }
                if !waiting { continuation.resume() }
            }
            return
        }
        defer {
            let waiters = storage.withState { state in
                state.refreshing = false
                defer { state.refreshWaiters.removeAll() }
                return state.refreshWaiters
            }
            for waiter in waiters { waiter.resume() }
        }

        var candidates: [RedisNodeAddress] = []
        for node in [preferred].compactMap({ $0 }) + (map?.nodes ?? []) + configuration.nodes
        where !candidates.contains(node) {
            candidates.append(node)
        }
        var failures: [String] = []
        for node in candidates {
            do {
                let reply = try await client(for: node).send(RedisCommand("CLUSTER", "SLOTS"), timeout: nil)
                let map = try RedisClusterMap(clusterSlotsReply: reply, queried: node)
                guard !map.ranges.isEmpty else {
                    failures.append("\(node): no slots assigned")
                    continue
                }
                storage.withState { state in
                    state.map = map
                    state.refreshes += 1
                    state.lastRefresh = .now
                }
                return
            } catch let error as RedisError where error.source == .server && error.message.contains("cluster support") {
                throw RedisError(
                    source: .client, code: .invalidInput,
                    message: "\(node) is not a cluster node (\(error.message))", command: "CLUSTER")
            } catch {
                failures.append("\(node): \(error)")
            }
        }
        throw RedisError(
            source: .connection, code: .connect,
            message: "no node of the cluster answered CLUSTER SLOTS (\(failures.joined(separator: "; ")))",
            command: "CLUSTER")
    }

    /// The client of `node`, made on first use.
    private func client(for node: RedisNodeAddress) throws -> Node {
        let client = storage.withState { state -> Node? in
            guard !state.closed else { return nil }
            if let client = state.nodes[node] { return client }
            let client = makeNode(configuration.forNode(node))
            state.nodes[node] = client
            return client
        }
        guard let client else {
            throw RedisError(source: .client, code: .invalidInput, message: "the cluster client is closed")
        }
        return client
    }
}
