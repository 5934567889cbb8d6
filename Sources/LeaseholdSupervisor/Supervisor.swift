/// The `leasehold supervisor` role: leader-elected maintenance (reclaim, retry, dead letters,
/// trimming). Filled by the supervisor issue.
public enum Supervisor {
    /// The role's name, as used in logs and metrics labels.
    public static let role = "supervisor"
}
