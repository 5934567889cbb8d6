import Foundation
import LeaseholdDomain
import LeaseholdQueue

/// A stream entry decoded into the work it asks for, by `kind`.
enum WorkItem: Sendable {
    /// `booking`: a booking, cancellation or reschedule (Telegram callback or `/v1/bookings`).
    case booking(BookingRequest)
    /// `yookassa.notification`: a payment or refund event.
    case payment(YooKassaNotification.Valid)

    /// Decodes `entry`; a failure is final (the entry can never succeed) and its text is the
    /// dead-letter reason.
    static func decode(_ entry: StreamEntry) -> Result<WorkItem, WorkItemError> {
        switch entry.kind {
        case BookingRequest.kind:
            guard let request = try? JSONDecoder().decode(BookingRequest.self, from: Data(entry.payload)),
                request.isComplete
            else { return .failure(WorkItemError("undecodable \(entry.kind) payload")) }
            return .success(.booking(request))
        case YooKassaNotification.kind:
            let notification: YooKassaNotification
            do {
                notification = try JSONDecoder().decode(YooKassaNotification.self, from: Data(entry.payload))
            } catch {
                return .failure(WorkItemError("undecodable \(entry.kind) payload"))
            }
            do {
                let valid = try notification.validated()
                guard valid.messageKey == entry.key else {
                    return .failure(
                        WorkItemError("entry key \(entry.key) does not match its payload (\(valid.messageKey))"))
                }
                return .success(.payment(valid))
            } catch {
                return .failure(WorkItemError("invalid \(entry.kind): \(error.reason)"))
            }
        default:
            return .failure(WorkItemError("unknown kind \(entry.kind)"))
        }
    }
}

/// Why an entry can never be processed (the dead-letter reason).
struct WorkItemError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}

/// What one committed transaction produced, for the acknowledgement and the metrics.
struct ProcessedEntry: Sendable {
    /// The business outcome (`booked`, `slot_taken`, …, or `applied`, `ignored`, `rejected`).
    var outcome: String
    /// The key was already in the inbox: nothing changed this time.
    var duplicate: Bool
    /// For API bookings: the request whose outcome is published to `lh:result:<request_id>`.
    var requestID: String?
    /// The published outcome's JSON.
    var published: [UInt8]?
}
