# A stand-in for orderflow-viewer in the supervisor's fault tests: answers
# GET /healthz with 200 on --host/--port; exits 1 when the port is taken.
# FAKE_START_LOG: append "viewer PID MS ARGS" at each start.
import http.server, os, sys, time

args = sys.argv[1:]
host = args[args.index("--host") + 1]
port = int(args[args.index("--port") + 1])
log = os.environ.get("FAKE_START_LOG")
if log:
    with open(log, "a") as f:
        f.write("viewer %d %d %s\n" % (os.getpid(), time.time() * 1000, " ".join(args)))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a):
        pass


try:
    server = http.server.HTTPServer((host, port), Handler)
except OSError as e:
    print("fake viewer: cannot listen on %s:%d: %s" % (host, port, e), file=sys.stderr, flush=True)
    sys.exit(1)
print("fake viewer %d listening on %s:%d" % (os.getpid(), host, port), flush=True)
server.serve_forever()
