import CMicroHTTPD
import Foundation
import PRMCore
import Synchronization

/// An HTTP listener on libmicrohttpd (Debian's libmicrohttpd-dev; no HTTP parsing of our own):
/// `--http`'s front door, or `--metrics-http`'s Prometheus endpoint alone. It answers on its own
/// thread only what needs no server state (unknown paths, methods, tokens, oversized bodies,
/// liveness); every other request goes to the front door's I/O thread, which answers it as it
/// answers a ZeroMQ request: same parse, admission, queue and batches.
///
/// Threads: libmicrohttpd's one internal thread polls every connection. A request whose body is
/// complete is suspended (`MHD_suspend_connection`) and handed over through an `HTTPInbox`; the
/// I/O thread finishes the exchange and resumes the connection (`MHD_resume_connection`, safe from
/// any thread), and libmicrohttpd's thread sends the answer. Suspension rather than a thread per
/// connection: a request waiting for its batch holds no thread, so 64 or 500 waiting clients cost
/// a connection each, not a thread and its stack each, and all per-connection work stays on one
/// thread.
final class HTTPServer: @unchecked Sendable {
    /// "http" or "metrics_http": the listener label of `prm_http_requests_total`.
    let listener: String
    /// The address bound, with the port the system chose for port 0.
    private(set) var address = ""
    private let endpoints: [HTTPEndpoint]
    private let limits: ServerLimits
    private let tokens: BearerTokens?
    private let inbox: HTTPInbox
    private var daemon: OpaquePointer?
    /// TLS certificate and key, kept for the daemon's life.
    private var pemCopies: [UnsafeMutablePointer<CChar>] = []
    private let nextID = Atomic<UInt64>(1)
    /// Requests handed to the I/O thread whose response has not been sent yet.
    private let inFlight = Atomic<Int>(0)
    /// Set when `shutDown` starts: no request is handed over (suspended) after it, since stopping
    /// libmicrohttpd with a suspended connection is undefined behaviour.
    private let closing = Atomic<Bool>(false)
    private let counts = Mutex<[HTTPCount: Int]>([:])
    /// Handed-over requests the front door passed on under a route (I/O thread only).
    private var routed: [UInt64: HTTPExchange] = [:]

    /// Starts listening. `endpoints`: what this listener serves (everything, or `/metrics` only).
    init(listener: String, settings: HTTPSettings, endpoints: [HTTPEndpoint], limits: ServerLimits) throws {
        self.listener = listener
        self.endpoints = endpoints
        self.limits = limits
        tokens = try settings.tokenFile.map { try BearerTokens(file: $0) }
        inbox = try HTTPInbox()
        let bind = try HTTPAddress(settings.address)
        var flags = MHD_USE_AUTO_INTERNAL_THREAD.rawValue | MHD_ALLOW_SUSPEND_RESUME.rawValue | MHD_USE_ERROR_LOG.rawValue
        if bind.isIPv6 { flags |= MHD_USE_IPv6.rawValue }
        var options = [
            MHD_OptionItem(option: MHD_OPTION.CONNECTION_TIMEOUT, value: settings.connectionTimeout, ptr_value: nil),
            MHD_OptionItem(option: MHD_OPTION.CONNECTION_LIMIT, value: settings.maxConnections, ptr_value: nil),
            MHD_OptionItem(option: MHD_OPTION.LISTENING_ADDRESS_REUSE, value: 1, ptr_value: nil),
            MHD_OptionItem(option: MHD_OPTION.NOTIFY_COMPLETED, value: unsafeBitCast(Self.completed, to: Int.self), ptr_value: nil),
        ]
        if let tls = try Self.tls(settings) {
            pemCopies = [strdup(tls.certificate), strdup(tls.key)]
            flags |= MHD_USE_TLS.rawValue
            options.append(MHD_OptionItem(option: MHD_OPTION.HTTPS_MEM_CERT, value: 0, ptr_value: UnsafeMutableRawPointer(pemCopies[0])))
            options.append(MHD_OptionItem(option: MHD_OPTION.HTTPS_MEM_KEY, value: 0, ptr_value: UnsafeMutableRawPointer(pemCopies[1])))
        }
        let context = Unmanaged.passUnretained(self).toOpaque()
        // The completion callback gets this server as its context too.
        options[3].ptr_value = context
        daemon = bind.socketAddress.withUnsafeBytes { socketAddress in
            options.append(MHD_OptionItem(option: MHD_OPTION.SOCK_ADDR, value: 0, ptr_value: UnsafeMutableRawPointer(mutating: socketAddress.baseAddress)))
            options.append(MHD_OptionItem(option: MHD_OPTION.END, value: 0, ptr_value: nil))
            return prm_mhd_start(flags, Self.access, context, &options)
        }
        guard let daemon else {
            pemCopies.forEach { free($0) }
            throw ServingError("cannot listen for HTTP on \(settings.address): \(String(cString: strerror(errno))) (libmicrohttpd's message above says more)")
        }
        let host = settings.address[..<(settings.address.lastIndex(of: ":") ?? settings.address.endIndex)]
        address = "\(host):\(prm_mhd_bound_port(daemon))"
    }

    deinit { stop() }

    /// The read end of the hand-over pipe, for the I/O thread's poll.
    var fd: Int32 { inbox.fd }

    /// Reads a PEM certificate and key, after checking this libmicrohttpd can speak TLS.
    private static func tls(_ settings: HTTPSettings) throws -> (certificate: String, key: String)? {
        switch (settings.tlsCertificate, settings.tlsKey) {
        case (nil, nil): return nil
        case (let certificate?, let key?):
            guard MHD_is_feature_supported(.FEATURE_TLS) == .YES else {
                throw ServingError("--tls-cert/--tls-key: this libmicrohttpd was built without TLS (GnuTLS)")
            }
            return (try pem(certificate, "--tls-cert"), try pem(key, "--tls-key"))
        default: throw ServingError("TLS needs both --tls-cert and --tls-key")
        }
    }

    private static func pem(_ file: URL, _ option: String) throws -> String {
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { throw ServingError("\(option) \(file.path): cannot read the file") }
        guard text.contains("-----BEGIN ") else { throw ServingError("\(option) \(file.path): not a PEM file (no -----BEGIN line)") }
        return text
    }

    // MARK: - The I/O thread

    /// Requests handed over since the last call.
    func arrived() -> [HTTPExchange] { inbox.take() }

    /// The route a handed-over request travels under through the front door and its backend: an
    /// empty first frame, which no ZeroMQ route has (a peer's identity or a worker's PRMW1
    /// header comes first), then the exchange's id.
    func route(_ exchange: HTTPExchange) -> [[UInt8]] {
        routed[exchange.id] = exchange
        return [[], withUnsafeBytes(of: exchange.id.littleEndian, Array.init)]
    }

    static func isHTTP(_ route: [[UInt8]]) -> Bool { route.first?.isEmpty == true }

    /// Answers the request `route` names with a v1 reply; false when it is not (or no longer) held.
    func complete(_ route: [[UInt8]], reply: [UInt8], code: ErrorCode?) -> Bool {
        guard route.count == 2, route[1].count == 8 else { return false }
        let id = UInt64(littleEndian: route[1].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        guard let exchange = routed.removeValue(forKey: id) else { return false }
        finish(exchange, exchange.endpoint.answer(reply, code: code, request: exchange.body))
        return true
    }

    /// Gives a handed-over request its answer and wakes its connection to send it.
    func finish(_ exchange: HTTPExchange, _ answer: HTTPAnswer) {
        exchange.finish(answer)
        MHD_resume_connection(exchange.connection)
    }

    func reloadTokens() { tokens?.reload() }

    /// Responses sent so far, by endpoint and status.
    func snapshot() -> [HTTPCount: Int] { counts.withLock { $0 } }

    /// Stops listening, answers what is still handed over with `refusal`, waits up to `grace`
    /// seconds for the answers to be sent, then closes every connection. Every request handed over
    /// is answered (so resumed) before the daemon stops: `proceed` counts a hand-over in
    /// `inFlight` before it reads `closing`, and this waits for `inFlight` after setting it.
    func shutDown(refusal: HTTPAnswer, grace: Double = 2) {
        guard let daemon else { return }
        closing.store(true, ordering: .sequentiallyConsistent)
        let listening = MHD_quiesce_daemon(daemon)
        if listening >= 0 { close(listening) }
        for exchange in routed.values { finish(exchange, refusal) }
        routed.removeAll()
        let deadline = MonotonicClock.now + grace
        while inFlight.load(ordering: .sequentiallyConsistent) > 0, MonotonicClock.now < deadline {
            for exchange in arrived() { finish(exchange, refusal) }
            usleep(2_000)
        }
        stop()
    }

    private func stop() {
        guard let daemon else { return }
        MHD_stop_daemon(daemon)
        self.daemon = nil
        pemCopies.forEach { free($0) }
        pemCopies = []
    }

    // MARK: - libmicrohttpd's thread

    private static let access: MHD_AccessHandlerCallback = { context, connection, url, method, _, upload, uploadSize, state in
        guard let context, let connection, let uploadSize, let state else { return .NO }
        let server = Unmanaged<HTTPServer>.fromOpaque(context).takeUnretainedValue()
        if let held = state.pointee {
            let exchange = Unmanaged<HTTPExchange>.fromOpaque(held).takeUnretainedValue()
            return server.proceed(exchange, upload: upload, size: uploadSize)
        }
        let path = url.map { String(cString: $0) } ?? "/", verb = method.map { String(cString: $0) } ?? ""
        return server.begin(connection, path: path, method: verb, state: state)
    }

    private static let completed: MHD_RequestCompletedCallback = { context, _, state, _ in
        guard let context, let held = state?.pointee else { return }
        let server = Unmanaged<HTTPServer>.fromOpaque(context).takeUnretainedValue()
        let exchange = Unmanaged<HTTPExchange>.fromOpaque(held).takeRetainedValue()
        state?.pointee = nil
        if exchange.handedOver { server.inFlight.subtract(1, ordering: .sequentiallyConsistent) }
    }

    /// The headers are in: refuses at once what can be refused without reading the body.
    private func begin(_ connection: OpaquePointer, path: String, method: String, state: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> MHD_Result {
        guard let endpoint = endpoints.first(where: { $0.rawValue == path }) else {
            let known = endpoints.map(\.rawValue).joined(separator: ", ")
            return send(connection, path: "other", .error(WireError(.badRequest, "no endpoint at \(path); this listener serves \(known)"), status: 404))
        }
        let exchange = HTTPExchange(id: nextID.add(1, ordering: .relaxed).oldValue, connection: connection, endpoint: endpoint, method: method)
        state.pointee = Unmanaged.passRetained(exchange).toOpaque()
        if let refusal = refusal(exchange) { return send(connection, path: path, refusal) }
        return .YES
    }

    private func refusal(_ exchange: HTTPExchange) -> HTTPAnswer? {
        let endpoint = exchange.endpoint
        let method = exchange.method == "HEAD" ? "GET" : exchange.method
        guard method == endpoint.method else {
            var answer = HTTPAnswer.error(WireError(.badRequest, "\(endpoint.rawValue) takes \(endpoint.method), not \(exchange.method)"), status: 405)
            answer.headers.append(("Allow", endpoint.method == "GET" ? "GET, HEAD" : "POST"))
            return answer
        }
        if let tokens, endpoint.needsToken, !tokens.admits(authorization: header(exchange.connection, "Authorization")) {
            var answer = HTTPAnswer.error(WireError(.badRequest, "missing or wrong bearer token: send Authorization: Bearer TOKEN"), status: 401)
            answer.headers.append(("WWW-Authenticate", "Bearer"))
            return answer
        }
        if let length = header(exchange.connection, "Content-Length").flatMap({ Int($0) }) {
            do throws(WireError) { try limits.checkSize(length) } catch { return .error(error) }
        }
        return nil
    }

    /// A body chunk, or (size 0) the end of the request: hands it over, or sends its answer.
    private func proceed(_ exchange: HTTPExchange, upload: UnsafePointer<CChar>?, size: UnsafeMutablePointer<Int>) -> MHD_Result {
        if size.pointee > 0 {
            // Without a Content-Length (chunked) the size shows only as the body arrives: past the
            // limit the connection is closed, since no answer can be sent while the client sends.
            guard !exchange.handedOver, exchange.body.count + size.pointee <= limits.maxMessageBytes, let upload else { return .NO }
            exchange.body += UnsafeRawBufferPointer(start: upload, count: size.pointee)
            size.pointee = 0
            return .YES
        }
        if let answer = exchange.takeAnswer() { return send(exchange.connection, path: exchange.endpoint.rawValue, answer) }
        guard !exchange.handedOver else { return .YES }
        if exchange.endpoint == .live { return send(exchange.connection, path: exchange.endpoint.rawValue, .json(Array(#"{"live":true}"#.utf8))) }
        inFlight.add(1, ordering: .sequentiallyConsistent)
        guard !closing.load(ordering: .sequentiallyConsistent) else {
            inFlight.subtract(1, ordering: .sequentiallyConsistent)
            return send(exchange.connection, path: exchange.endpoint.rawValue,
                        .error(WireError(.shuttingDown, "the HTTP front door is closing and takes no new work")))
        }
        exchange.handedOver = true
        MHD_suspend_connection(exchange.connection)
        inbox.push(exchange)
        return .YES
    }

    private func header(_ connection: OpaquePointer, _ name: String) -> String? {
        MHD_lookup_connection_value(connection, .HEADER_KIND, name).map { String(cString: $0) }
    }

    private func send(_ connection: OpaquePointer, path: String, _ answer: HTTPAnswer) -> MHD_Result {
        counts.withLock { $0[HTTPCount(listener: listener, endpoint: path, status: answer.status), default: 0] += 1 }
        let response = answer.body.withUnsafeBytes {
            MHD_create_response_from_buffer($0.count, UnsafeMutableRawPointer(mutating: $0.baseAddress), .RESPMEM_MUST_COPY)
        }
        guard let response else { return .NO }
        defer { MHD_destroy_response(response) }
        MHD_add_response_header(response, "Content-Type", answer.contentType)
        for (name, value) in answer.headers { MHD_add_response_header(response, name, value) }
        return MHD_queue_response(connection, UInt32(answer.status), response)
    }
}
