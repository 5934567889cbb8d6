/// A YooKassa notification read straight from its bytes, on the same terms as
/// ``TelegramUpdate/init(plain:)``: only for a body ``StrictJSON`` has passed, giving up (`nil`) on
/// anything out of the ordinary in the members `YooKassaNotification`'s `Decodable` reads (an
/// escape, a value of another type, a required member missing), which then go to `JSONDecoder`.
/// Every member it reads is a string or an object of strings.
extension YooKassaNotification {
    init?(plain bytes: [UInt8]) {
        guard let notification = PlainJSONReader.read(bytes, .strictlyChecked, { Self(plain: &$0) }) else {
            return nil
        }
        self = notification
    }

    private init?(plain reader: inout PlainJSONReader) {
        var type: String?
        var event: String?
        var object: Object?
        let read = reader.object { reader, key in
            switch key {
            case "type":
                type = reader.string()
                return type != nil
            case "event":
                event = reader.string()
                return event != nil
            case "object":
                object = Object(plain: &reader)
                return object != nil
            default:
                return reader.skipValue()
            }
        }
        guard read, reader.atEnd, let type, let event, let object else { return nil }
        self.init(type: type, event: event, object: object)
    }
}

extension YooKassaNotification.Object {
    fileprivate init?(plain reader: inout PlainJSONReader) {
        var id: String?
        var status: String??
        var amount: YooKassaNotification.Amount??
        var paymentID: String??
        var cancellation: YooKassaNotification.CancellationDetails??
        let read = reader.object { reader, key in
            switch key {
            case "id":
                id = reader.string()
                return id != nil
            case "status":
                status = reader.nullable { $0.string() }
                return status != nil
            case "payment_id":
                paymentID = reader.nullable { $0.string() }
                return paymentID != nil
            case "amount":
                amount = reader.nullable { reader in
                    let members = reader.strings(["value", "currency"])
                    guard let members, let value = members[0] ?? nil, let currency = members[1] ?? nil else {
                        return nil
                    }
                    return YooKassaNotification.Amount(value: value, currency: currency)
                }
                return amount != nil
            case "cancellation_details":
                cancellation = reader.nullable { reader in
                    reader.strings(["party", "reason"]).map {
                        YooKassaNotification.CancellationDetails(party: $0[0] ?? nil, reason: $0[1] ?? nil)
                    }
                }
                return cancellation != nil
            default:
                return reader.skipValue()
            }
        }
        guard read, let id else { return nil }
        self.init(
            id: id, status: status ?? nil, amount: amount ?? nil, paymentID: paymentID ?? nil,
            cancellationDetails: cancellation ?? nil)
    }
}
