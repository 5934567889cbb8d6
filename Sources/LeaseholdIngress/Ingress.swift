/// The `leasehold ingress` role: authenticates and validates webhooks and API calls, and XADDs
/// them to Redis streams before answering 2xx. Stateless, no Postgres. Filled by the bookings issue.
public enum Ingress {
    /// The role's name, as used in logs and metrics labels.
    public static let role = "ingress"
}
