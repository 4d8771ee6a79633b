// Package codeengine is the IBM Cloud Code Engine application runtime: `exec serve`.
// It turns HTTP requests into app.Request values and app.Response values back into
// HTTP answers, and owns what a long-running HTTP server on Code Engine needs (the
// port, limits, the stop signal). It translates and decides nothing else: which
// notification is genuine, what to copy and which status says so are internal/app's.
//
// # What Code Engine gives the application
//
// docs/services/code-engine-runtime.md lists each fact with its public source (the
// CLI side, --port and the health check deploy.sh runs, is docs/services/code-engine.md);
// in short:
//
//   - PORT: the port to listen on, plain HTTP (TLS ends in front of the app); 8080
//     unless the application was created with --port. CE_APP, CE_REGION,
//     CE_PROJECT_ID, CE_SUBDOMAIN, CE_DOMAIN, K_SERVICE, K_REVISION are set too; only
//     CE_APP and K_REVISION are read here, to say in the first log line what started.
//   - SIGTERM when an instance is scaled down (or fails a liveness probe). An app that
//     ignores it stays Terminating for the request timeout (default 300 s) and is then
//     killed. Here: stop accepting, let the requests in flight finish for at most
//     ShutdownGrace (10 s, the contract's bound), exit 0. SIGINT does the same.
//   - Concurrency: at most --concurrency requests (default 100) reach one instance;
//     more are queued in front of it or start another instance. MaxConcurrent (16) is
//     the server's own bound: one request over it is answered 503 with Retry-After
//     at once, which Event Notifications honours when it retries. Deploying with
//     --concurrency at most MaxConcurrent lets Code Engine scale out instead.
//   - Readiness: by default a TCP probe on the port; an HTTP probe (GET, 200-399 is
//     ready) on /healthz is configured with --probe-ready type=http --probe-ready
//     path=/healthz.
//
// Event Notifications waits 10 s for an answer and retries at most 3 times
// (docs/services/event-notifications.md §3): app.EventsBudget (8 s) keeps /events
// within that; the server's own timeouts are longer and only bound what a misbehaving
// client can hold.
//
// # An invalid configuration
//
// The configuration is read once, from the environment (config.FromEnv and
// config.Parse: the same table as the job and the terminal command). When it is
// invalid, serve logs one line per problem (the parameter, its variables and the rule;
// never a value) and keeps serving: /healthz answers 503 and /notify and /events
// app.Misconfigured(). It does not exit 2, because Code Engine's readiness probe is a
// TCP probe by default: an exiting process would be restarted over and over (a crash
// loop whose logs are of the dead instances), each notification would wait for an
// instance that never comes up, and an operator would see "not ready" with no reason.
// A running process answers at once with a clear status, keeps its reason in the
// application's logs, fails `curl .../healthz` in deploy.sh, and with the HTTP
// readiness probe above shows as an unhealthy (not ready) instance that receives no
// traffic. Exit 2 is kept for what makes serving impossible: arguments, or a PORT that
// is not a port.
//
// # Timeouts and limits
//
//   - ReadHeaderTimeout 5 s: a proxy sends a request's headers at once; a client
//     sending them byte by byte is cut off, and it never holds a slot (a slot is
//     taken only once the whole body has arrived).
//   - ReadTimeout 10 s: headers and body (at most MaxBodyBytes, 1 MiB, plus 4 KiB so
//     that the trigger's own size check answers first); a body that never comes is
//     cut off here, answered 408. A larger body is 413 (Content-Length, or
//     http.MaxBytesReader while reading).
//   - RequestTimeout 30 s: the deadline of each Handler call. /events answers within
//     app.EventsBudget (8 s) by itself; /notify gets the time a Certificate Manager
//     notification with several certificates and backups needs (the OpenWhisk web
//     action gets 45 s). A caller hanging up does not cancel the work.
//   - WriteTimeout 45 s = ReadTimeout + RequestTimeout + 5 s: net/http counts it from
//     the end of the headers, so it must cover the body, the handler and the answer.
//   - IdleTimeout 120 s: longer than Go's default transport keeps idle connections
//     (90 s), so that the server is not the side that closes a connection a proxy in
//     front is about to reuse. MaxHeaderBytes 64 KiB.
//
// # What it must never do
//
// Echo a request's body or headers, or log them: a request line holds the method, the
// path, the status, the duration and the request id (X-Request-Id when it is a plain
// token, else a random one). The Authorization header reaches the Handler only. A
// panic in the Handler is answered with app.Internal() (500, never a success) and
// logged by its type, not its value.
package codeengine
