#!/usr/bin/env python3
"""Concurrent-client latency (docs/extensions.md, item 1; stdlib only).

Usage: tools/concurrent-ping.py <agent binary>
Starts the agent on a unix socket with a 10 s fsfreeze hook, then measures guest-ping
round trips on one connection: idle, while another connection runs the hook (a freeze of a
mount point that does not exist: the hook runs, nothing freezes), and while another
connection has a 10 s guest-exec child with captured output.
"""
import socket, time, json, sys, os, subprocess, tempfile, statistics
agent = sys.argv[1]
d = tempfile.mkdtemp(prefix="qga-ping-")
hook = os.path.join(d, "hook.sh")
open(hook, "w").write('#!/bin/sh\n[ "$1" = freeze ] && sleep 10\nexit 0\n')
os.chmod(hook, 0o755)
conf = os.path.join(d, "c.conf"); open(conf, "w").write("")
sock = os.path.join(d, "sock")
p = subprocess.Popen([agent, "-m", "unix-listen", "-p", sock, "-t", d, "-F" + hook], env=dict(os.environ, QGA_CONF=conf))
while not os.path.exists(sock): time.sleep(0.01)
time.sleep(0.2)
def conn():
    s = socket.socket(socket.AF_UNIX); s.connect(sock); return s, s.makefile("rb")
def ping(s, f):
    t = time.perf_counter(); s.sendall(b'{"execute":"guest-ping"}'); f.readline(); return (time.perf_counter() - t) * 1e6
def run(label, slow_req):
    s, f = conn()
    base = [ping(s, f) for _ in range(500)]
    a, af = conn()
    if slow_req: a.sendall(slow_req)
    time.sleep(0.5)
    busy = []
    t0 = time.time()
    while time.time() - t0 < 8:
        busy.append(ping(s, f))
    if slow_req: r = af.readline()
    else: r = b""
    q = lambda xs: "median %.0f us, p99 %.0f us, max %.0f us (n=%d)" % (statistics.median(xs), sorted(xs)[int(len(xs)*0.99)], max(xs), len(xs))
    print(label, "idle:", q(base)); print(label, "busy:", q(busy), "slow reply:", r.strip()[:80])
    s.close(); a.close()
run("freeze-hook-10s", b'{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":["/nonexistent-qga"]}}')
# exec: 10 s process with captured output, polled on the slow connection
s, f = conn(); a, af = conn()
a.sendall(b'{"execute":"guest-exec","arguments":{"path":"/bin/sh","arg":["-c","for i in 1 2 3 4 5 6 7 8 9 10; do echo $i; sleep 1; done"],"capture-output":true}}')
pid = json.loads(af.readline())["return"]["pid"]
busy = []; t0 = time.time()
while time.time() - t0 < 9:
    busy.append(ping(s, f))
print("exec-10s busy:", "median %.0f us, p99 %.0f us, max %.0f us (n=%d)" % (statistics.median(busy), sorted(busy)[int(len(busy)*0.99)], max(busy), len(busy)))
p.terminate(); p.wait()
import shutil; shutil.rmtree(d, ignore_errors=True)
