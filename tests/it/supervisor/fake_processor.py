# A stand-in for orderflow-processor in the supervisor's fault tests.
# Accepts the processor's arguments; writes status.json heartbeats every
# 100 ms; "processes" FAKE_RUN_MS of work, keeping its progress in a
# checkpoint in OUT so a restart resumes; then writes `finished` and exits 0.
# FAKE_START_LOG: append "processor PID MS ARGS" at each start.
# FAKE_GRANDCHILD: start a sleeping process in its group and append its pid there.
# FAKE_IGNORE_TERM: ignore SIGTERM.
# FAKE_CHATTY: print this many lines to stdout every 100 ms.
import json, os, signal, subprocess, sys, time

args = sys.argv[1:]
out = args[args.index("--out") + 1]
os.makedirs(out, exist_ok=True)
if os.environ.get("FAKE_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
log = os.environ.get("FAKE_START_LOG")
if log:
    with open(log, "a") as f:
        f.write("processor %d %d %s\n" % (os.getpid(), time.time() * 1000, " ".join(args)))
grandchild = os.environ.get("FAKE_GRANDCHILD")
if grandchild:
    # Named after OUT so the test's guard can recognise it.
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)", out])
    with open(grandchild, "a") as f:
        f.write("%d\n" % p.pid)

run_ms = int(os.environ.get("FAKE_RUN_MS", "600000"))
checkpoint = os.path.join(out, "fake-checkpoint")
done = 0
if "--fresh" not in args and os.path.exists(checkpoint):
    done = int(open(checkpoint).read() or 0)


def replace(name, text):
    tmp = os.path.join(out, ".%s.%d.tmp" % (name, os.getpid()))
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, os.path.join(out, name))


def status(state):
    now = int(time.time() * 1000)
    replace("status.json", json.dumps({"state": state, "pid": os.getpid(), "heartbeat_ms": now, "progress": done / run_ms}))


print("fake processor %d starting at %d ms" % (os.getpid(), done), flush=True)
print("a line on stderr", file=sys.stderr, flush=True)
chatty = int(os.environ.get("FAKE_CHATTY", "0"))
while done < run_ms:
    status("running")
    if chatty:
        sys.stdout.write("".join("chatter %d of a fake processor that prints a lot\n" % i for i in range(chatty)))
        sys.stdout.flush()
    time.sleep(0.1)
    done += 100
    replace("fake-checkpoint", str(done))
status("finished")
print("fake processor finished", flush=True)
