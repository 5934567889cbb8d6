/// The business outcome of one booking request, as `GET /v1/bookings/<request_id>` reports it.
///
/// This layer holds the booking and payment rules and their transactions (filled by the bookings
/// and payments issues); it depends on the Postgres wrapper only.
public enum BookingOutcome: String, Sendable, Codable, CaseIterable {
    /// Accepted, not yet committed.
    case pending
    case booked
    /// The slot already has an active interview.
    case slotTaken = "slot_taken"
    /// The user already has an active interview (when one per user is enforced).
    case alreadyBooked = "already_booked"
    case unknownSlot = "unknown_slot"
    /// Refused for another reason (unknown user, bad state); see the outbox reply.
    case rejected
}
