import Foundation

/// What `leasehold loadtest` drives. Every field has a default.
public struct LoadTestConfiguration: Sendable {
    /// Ingress base URLs; requests are spread across them round-robin.
    public var ingressURLs: [String]
    /// Bearer token for `/v1/bookings`.
    public var apiToken: String
    /// PostgreSQL of the system under test: seeding, verification, pgbench.
    public var postgresURL: String
    /// Fresh slots created for this run.
    public var slots: Int
    /// Requests aimed at each slot (the contention): one wins, the rest get `slot_taken`.
    public var requestsPerSlot: Int
    /// Concurrent clients (closed loop: each sends its next request when the previous was answered).
    public var concurrency: Int
    /// Fixed arrival rate in requests per second instead of a closed loop (still bounded by `concurrency`).
    public var rate: Double?
    /// How long to wait, after the last request was sent, for every accepted request's outcome.
    public var completionTimeout: Duration
    /// The PostgreSQL server log, for the "no duplicate key errors" invariant; `nil` skips that check.
    public var postgresLog: String?
    /// Also run pgbench with the same booking transaction at the same concurrency and contention.
    public var pgbench: Bool
    /// Print the live progress line (to standard error).
    public var progress: Bool

    public init(
        ingressURLs: [String] = ["http://127.0.0.1:8080"], apiToken: String = "", postgresURL: String,
        slots: Int = 100, requestsPerSlot: Int = 20, concurrency: Int = 32, rate: Double? = nil,
        completionTimeout: Duration = .seconds(120), postgresLog: String? = nil, pgbench: Bool = true,
        progress: Bool = true
    ) {
        self.ingressURLs = ingressURLs
        self.apiToken = apiToken
        self.postgresURL = postgresURL
        self.slots = slots
        self.requestsPerSlot = requestsPerSlot
        self.concurrency = concurrency
        self.rate = rate
        self.completionTimeout = completionTimeout
        self.postgresLog = postgresLog
        self.pgbench = pgbench
        self.progress = progress
    }

    /// Total requests: every slot gets `requestsPerSlot`, each from a different user.
    public var requests: Int { slots * requestsPerSlot }
}
