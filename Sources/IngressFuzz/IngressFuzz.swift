import Foundation
import LeaseholdWire

/// libFuzzer entry point: every input goes through the three body decoders ingress runs
/// (``IngressBodies``), exactly as a request body would. A crash, a trap, an ASan report or an
/// accepted body that breaks what ingress promises about it (checked below) is a finding.
///
/// Built by `.ci/fuzz` with `-sanitize=fuzzer,address -DLEASEHOLD_FUZZ`: libFuzzer then supplies
/// `main`. Without those flags (the ordinary `swift build`), ``Replay`` is `main` and runs the
/// files given as arguments through the same function, to reproduce a crash in a debugger.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let body = Data(UnsafeBufferPointer(start: start, count: count))
    checkAllDecoders(body)
    return 0
}

func checkAllDecoders(_ body: Data) {
    var accepted = false
    // Telegram and YooKassa bodies are read without JSONDecoder when the plain reader can: its answer, or the
    // decoder's when it gives up, must be the decoder's own, rejection reasons included.
    func telegram(_ decode: (Data) throws(BodyRejection) -> IngressBodies.TelegramDecision)
        -> Result<IngressBodies.TelegramDecision, BodyRejection>
    {
        do throws(BodyRejection) { return .success(try decode(body)) } catch { return .failure(error) }
    }
    precondition(telegram(IngressBodies.telegram) == telegram(IngressBodies.telegramDecodedFully))
    // The same for YooKassa notifications.
    func yookassa(_ decode: (Data) throws(BodyRejection) -> YooKassaNotification.Valid)
        -> Result<YooKassaNotification.Valid, BodyRejection>
    {
        do throws(BodyRejection) { return .success(try decode(body)) } catch { return .failure(error) }
    }
    precondition(yookassa(IngressBodies.yookassa) == yookassa(IngressBodies.yookassaDecodedFully))
    do {
        if case .enqueue(_, _, let booking) = try IngressBodies.telegram(body) {
            precondition((booking.slotID ?? 1) > 0 && (booking.interviewID ?? 1) > 0)
            accepted = true
        }
    } catch {
        checkRefusal(error)
    }
    do {
        let valid = try IngressBodies.booking(body)
        precondition(IngressBodies.isValidRequestID(valid.requestID))
        precondition(valid.booking.userID > 0 && (valid.booking.slotID ?? 0) > 0)
        accepted = true
    } catch {
        checkRefusal(error)
    }
    do {
        let valid = try IngressBodies.yookassa(body)
        precondition(YooKassaNotification.isIdentifier(valid.objectID))
        precondition(YooKassaNotification.isAmount(valid.amount) && YooKassaNotification.isCurrency(valid.currency))
        accepted = true
    } catch {
        checkRefusal(error)
    }
    // Whatever ingress enqueues is JSON that any reader takes the same way: Foundation's parser
    // agrees, and there is no NUL in it to trip PostgreSQL.
    if accepted {
        precondition((try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed])) != nil)
        precondition(!body.contains(0))
    }
}

/// A refusal is a 400 or 422 with a one-line reason.
func checkRefusal(_ error: BodyRejection) {
    precondition([400, 422].contains(error.status) && !error.reason.isEmpty && !error.reason.contains("\n"))
}

#if LEASEHOLD_FUZZ
    /// libFuzzer's driver (FuzzerDriver.cpp), for a program that has a `main` of its own.
    @_silgen_name("LLVMFuzzerRunDriver")
    func runFuzzerDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ test: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    /// SwiftPM links every executable with `main` aliased to `<Target>_main`, which `@main` would
    /// define; in the fuzz build it hands over to libFuzzer instead.
    @_cdecl("IngressFuzz_main")
    func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
        var argc = argc
        var argv = argv
        return runFuzzerDriver(&argc, &argv, fuzzOneInput)
    }
#else
    @main
    enum Replay {
        static func main() throws {
            for path in CommandLine.arguments.dropFirst() {
                checkAllDecoders(try Data(contentsOf: URL(fileURLWithPath: path)))
                print("ok \(path)")
            }
        }
    }
#endif
