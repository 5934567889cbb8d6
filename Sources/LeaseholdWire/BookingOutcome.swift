/// The business outcome of one booking request, as `GET /v1/bookings/<request_id>` reports it.
public enum BookingOutcome: String, Sendable, Codable, CaseIterable {
    /// Accepted, not yet committed.
    case pending
    case booked
    /// The slot already has an active interview.
    case slotTaken = "slot_taken"
    /// The user already has an active interview (when one per user is enforced).
    case alreadyBooked = "already_booked"
    case unknownSlot = "unknown_slot"
    /// Refused for another reason (unknown user, closed slot, not the user's interview).
    case rejected
    /// A cancel freed the slot.
    case cancelled
    /// A reschedule moved the interview to the new slot.
    case rescheduled
    /// The idempotency key (`request_id`, `update_id`) was already used for a different request:
    /// nothing was done, and the first request's outcome stands. `GET /v1/bookings/<id>` answers
    /// 409 with it. A client that meant a new request must use a new key.
    case requestIDReused = "request_id_reused"

    /// The bot's reply for this outcome (the texts of the incident write-up).
    public var reply: String {
        switch self {
        case .pending: "⏳ Запрос принят, обрабатываем…"
        case .booked: "🎉 Вы успешно записаны!"
        case .slotTaken: "😔 К сожалению, это время уже занято."
        case .alreadyBooked: "ℹ️ У вас уже есть активная запись на собеседование."
        case .unknownSlot: "🤷 Такого времени нет в расписании."
        case .rejected: "⚠️ Не удалось выполнить запрос."
        case .cancelled: "✅ Запись отменена."
        case .rescheduled: "🔁 Запись перенесена на новое время."
        case .requestIDReused: "⚠️ Этот запрос уже был обработан с другими данными."
        }
    }
}
