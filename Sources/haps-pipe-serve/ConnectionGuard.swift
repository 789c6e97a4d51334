import Foundation
import HummingbirdCore
import NIOCore
import NIOHTTPTypes
import NN  // Threading's Lock, the one lock type

/// The server's open connections, shared by every event loop, kept under `limit`: a connection
/// past the limit closes the one idle the longest (no request of it waiting for its answer: idle
/// between requests, or still sending a request head or body), or, when every connection has a
/// request being answered, is itself closed at once. Without it, clients that open connections
/// and never finish a request (issue 25: 1 100 partial heads) ran the server out of file
/// descriptors, and an authorised request got no answer.
final class ConnectionCap: @unchecked Sendable {
    let limit: Int
    private let lock = Lock()
    private var open: [ObjectIdentifier: Entry] = [:]
    private var tick: UInt64 = 0

    private struct Entry {
        let channel: any Channel
        var busy: Bool      // a request of it, read in full, waits for its answer
        var since: UInt64   // when it was last opened or answered (in `tick`s)
    }

    init(limit: Int) { self.limit = limit }

    /// Registers a new connection and closes the longest-idle one if the cap is reached. Returns
    /// false, registering nothing, when the cap is reached and no connection is idle.
    func opened(_ channel: any Channel) -> Bool {
        let (admitted, evicted): (Bool, (any Channel)?) = lock.withLock {
            tick += 1
            var victim: (any Channel)?
            if open.count >= limit {
                guard let oldest = open.filter({ !$0.value.busy }).min(by: { $0.value.since < $1.value.since }) else { return (false, nil) }
                victim = oldest.value.channel
                open[oldest.key] = nil
            }
            open[ObjectIdentifier(channel)] = Entry(channel: channel, busy: false, since: tick)
            return (true, victim)
        }
        evicted?.close(promise: nil)
        return admitted
    }

    func closed(_ channel: any Channel) {
        lock.withLock { open[ObjectIdentifier(channel)] = nil }
    }

    /// Marks a connection as answering a request (not to be closed for room) or idle again.
    func setBusy(_ channel: any Channel, _ busy: Bool) {
        lock.withLock {
            tick += 1
            open[ObjectIdentifier(channel)]?.busy = busy
            if !busy { open[ObjectIdentifier(channel)]?.since = tick }
        }
    }

    /// Raises the soft limit on open files to the hard limit (as far as the system lets) and
    /// returns the soft limit then in force.
    static func raiseFileLimit() -> Int {
        var r = rlimit()
        guard getrlimit(resourceNOFILE, &r) == 0 else { return 1024 }
        if r.rlim_cur < r.rlim_max {
            var raised = r
            raised.rlim_cur = r.rlim_max
            if setrlimit(resourceNOFILE, &raised) == 0 { r = raised }
        }
        return Int(clamping: r.rlim_cur)  // unlimited (all ones) clamps to Int.max
    }

    #if os(Linux)
    private static let resourceNOFILE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    private static let resourceNOFILE = RLIMIT_NOFILE
    #endif

    /// File descriptors kept for the server's own use (event loops, model files, standard streams).
    static var reservedFiles: Int { 64 + 4 * ProcessInfo.processInfo.activeProcessorCount }
}

/// One per connection, after HTTP decoding: registers the connection with the `ConnectionCap`
/// (busy while a request read in full waits for its answer), closes it when a request's body does
/// not arrive in full within `readTimeout` of its head (Hummingbird's `idleTimeout` alone lets a
/// body trickle in forever), and after a response that says `Connection: close` (a 413) shuts
/// the server's side, leaving the rest of the body to be discarded until that deadline.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let cap: ConnectionCap
    let readTimeout: TimeAmount
    private var registered = false
    // Requests are answered in order; an answer may come before its request's end (a 413).
    private var headsRead = 0, endsRead = 0, answered = 0
    private var busy = false
    private var closing = false          // the server's side is shut: only the deadline is left
    private var closeAfterResponse = false
    private var deadline: Scheduled<Void>?

    init(cap: ConnectionCap, readTimeout: TimeAmount) {
        self.cap = cap
        self.readTimeout = readTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        registered = cap.opened(context.channel)
        if !registered {  // refused: closed once the pipeline is set up (not in the middle of it)
            let channel = context.channel
            context.eventLoop.execute { channel.close(promise: nil) }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) { finish(context) }

    func channelInactive(context: ChannelHandlerContext) {
        finish(context)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: headsRead += 1
        case .body: break
        case .end: endsRead += 1
        }
        update(context)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let response):
            if response.headerFields[.connection]?.lowercased() == "close" { closeAfterResponse = true }
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            answered += 1
            guard closeAfterResponse else {
                update(context)
                return context.write(data, promise: promise)
            }
            // Shut only our side: the client reads the whole answer (a full close with input
            // unread would reset the connection under it); the read deadline ends the rest.
            context.writeAndFlush(data, promise: promise)
            context.close(mode: .output, promise: nil)
            closing = true
            update(context)
        }
    }

    /// Brings the cap's busy mark and the read deadline in line with the counts. The deadline
    /// runs while a request is being read and every request before it is answered (behind one
    /// being answered, a body may wait unread); it is not restarted while that holds.
    private func update(_ context: ChannelHandlerContext) {
        let nowBusy = endsRead > answered
        if registered && nowBusy != busy { cap.setBusy(context.channel, nowBusy) }
        busy = nowBusy
        let reading = headsRead > endsRead && answered >= endsRead
        if (reading || closing) && deadline == nil {
            let channel = context.channel
            deadline = context.eventLoop.scheduleTask(in: readTimeout) { channel.close(promise: nil) }
        } else if !(reading || closing), let d = deadline {
            d.cancel()
            deadline = nil
        }
    }

    private func finish(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        if registered { cap.closed(context.channel) }
        registered = false
    }
}
