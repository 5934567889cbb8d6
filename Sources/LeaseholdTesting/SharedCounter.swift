import Synchronization

/// A counter tasks share: hands out indexes (`next()`) or counts events (`add`).
public final class SharedCounter: Sendable {
    private let storage: Mutex<Int>

    public init(_ value: Int = 0) {
        storage = Mutex(value)
    }

    /// Returns the current value and increments it.
    public func next() -> Int {
        storage.withLock { value in
            defer { value += 1 }
            return value
        }
    }

    public func add(_ delta: Int = 1) {
        storage.withLock { $0 += delta }
    }

    public var value: Int { storage.withLock { $0 } }
}
