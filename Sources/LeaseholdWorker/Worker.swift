/// The `leasehold worker` role: claims stream entries through the consumer group, takes a lease,
/// runs one Postgres transaction per entry, then acknowledges. Filled by the bookings issue.
public enum Worker {
    /// The role's name, as used in logs and metrics labels.
    public static let role = "worker"
}
