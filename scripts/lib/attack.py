#!/usr/bin/env python3
"""Named attacks on a real tcpd (scripts/attack.sh). Each starts its own tcpd on 127.0.0.1, runs
for a bounded time, and checks what the attack must not change: a good client's latency, the
summary's outcomes adding up to `accepted` with none left active, and the server's descriptors
back at their baseline afterwards. Prints one line per scenario; exits 1 if any failed."""

import argparse
import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time

TCPC = "build/release/bin/tcpc"
OUTCOMES = ("served", "no_request", "busy", "shed", "idle_timeout", "io_timeout", "too_long",
            "reset", "shutdown", "error", "bad_header", "denied", "limited")


class Tcpd:
    def __init__(self, binary, args):
        def raise_fd_limit():
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", "0", "--quiet"] + args,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=raise_fd_limit, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r":(\d+)$", line.strip())
        if not m:
            self.proc.kill()
            raise RuntimeError("tcpd did not start: " + line + self.proc.stderr.read())
        self.port = int(m.group(1))
        self.baseline_fds = self.fds()

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def fds_back(self, timeout=15.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.fds() <= self.baseline_fds:
                return True
            time.sleep(0.05)
        return False

    def stop(self, timeout=30.0):
        """SIGTERM, then the summary's counters; (seconds to exit, counters)."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        took = time.monotonic() - start
        summary = [l for l in err.splitlines() if "summary" in l]
        counters = dict(re.findall(r"(\w+)=(\d+)", summary[-1])) if summary else {}
        return took, {k: int(v) for k, v in counters.items()}


def adds_up(c):
    return bool(c) and c.get("open") == 0 and c.get("accepted") == sum(c.get(o, 0) for o in OUTCOMES)


def connect(port, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_line(s, timeout=5.0):
    s.settimeout(timeout)
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf


class Probe:
    """A keep-alive client asking 300 times a second, in its own process (tcpc), so that what
    the attack's own clients cost this script never shows as the server's latency."""

    def __init__(self, tcpc, port, seconds):
        self.proc = subprocess.Popen(
            [tcpc, "--host", "127.0.0.1", "--port", str(port), "--keepalive", "--concurrency", "1",
             "--rate", "300", "--duration", str(seconds), "--timeout-ms", "10000", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.result = {}

    def join(self, timeout):
        out, _ = self.proc.communicate(timeout=timeout)
        self.result = json.loads(out)
        self.failed = self.result.get("failed", 1)
        return self

    def p99(self):
        return self.result.get("p99_us_uncorrected", 1e9) / 1e6

    def worst(self):
        return self.result.get("max_us_uncorrected", 1e9) / 1e6


def probe_during(port, seconds, action, tcpc=None):
    p = Probe(tcpc or TCPC, port, seconds)
    time.sleep(0.05)
    action()
    return p.join(seconds + 30)


def ms(x):
    return f"{x * 1000:.1f} ms"


def half_close(a):
    srv = Tcpd(a.tcpd, ["--idle-timeout-ms", "10000"])
    worst = 0.0

    def client():
        nonlocal worst
        s = connect(srv.port)
        t = time.monotonic()
        s.sendall(b"a\n")
        read_line(s)
        s.sendall(b"b\n")
        s.shutdown(socket.SHUT_WR)
        s.settimeout(15)
        while s.recv(4096):
            pass
        worst = max(worst, time.monotonic() - t)
        s.close()
    for _ in range(10):
        ts = [threading.Thread(target=client) for _ in range(10)]
        [t.start() for t in ts]
        [t.join(30) for t in ts]
    fds = srv.fds_back()
    _, c = srv.stop()
    ok = worst < 1.0 and c.get("idle_timeout", 1) == 0 and c.get("served") == 100
    return ok and adds_up(c) and fds, f"100 clients closing after their last request: slowest {ms(worst)}, served={c.get('served')} idle_timeout={c.get('idle_timeout')}"


def drain(a):
    srv = Tcpd(a.tcpd, ["--mode", "echo", "--idle-timeout-ms", "60000", "--io-timeout-ms", "60000",
                        "--drain-timeout-ms", "500"])
    idle, half, partial, hog, silent, one = (connect(srv.port) for _ in range(6))
    for s in (idle, half, partial):
        s.sendall(b"a\n")
        read_line(s)
    time.sleep(0.1)  # parked after its reply: the close comes as an event of its own
    half.sendall(b"b")
    half.shutdown(socket.SHUT_WR)
    partial.sendall(b"half a request")
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.setblocking(False)
    try:
        for _ in range(2000):
            hog.send(b"x" * 60000 + b"\n")
    except BlockingIOError:
        pass
    one.sendall(b"no newline")
    time.sleep(0.1)
    took, c = srv.stop()
    ok = took < 0.5 + 1.0 + 0.5 and adds_up(c) and c.get("accepted") == 6
    return ok, f"drain with every kind of session open: exit after {ms(took)} (deadline 500 ms + 1 s grace), open={c.get('open')}"


def stream(a):
    srv = Tcpd(a.tcpd, ["--workers", "8"])
    before = probe_during(srv.port, 0.5, lambda: None)
    s = connect(srv.port)
    stop = threading.Event()
    got = [0]
    burst = (b"x" * 999 + b"\n") * 64

    def writer():
        sent = 0
        while not stop.is_set():
            s.sendall(burst)
            sent += 64
        s.shutdown(socket.SHUT_WR)
        got.append(sent)

    def reader():
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got[0] += chunk.count(b"\n")
    w, r = threading.Thread(target=writer), threading.Thread(target=reader)
    w.start()
    r.start()
    time.sleep(0.2)
    during = probe_during(srv.port, 2.0, lambda: None)
    stop.set()
    w.join(30)
    r.join(30)
    s.close()
    fds = srv.fds_back()
    _, c = srv.stop()
    bound = max(5 * before.p99(), 0.05)
    ok = during.worst() < bound and during.failed == 0 and len(got) == 2 and got[0] == got[1]
    return ok and adds_up(c) and fds, f"one client streaming {got[-1]} requests: probe p99 {ms(before.p99())} before, worst {ms(during.worst())} during (bound {ms(bound)}); replies {got[0]}/{got[-1]}"


def non_readers(a):
    srv = Tcpd(a.tcpd, ["--workers", "8", "--mode", "echo", "--io-timeout-ms", "4000"])
    hogs = []
    for _ in range(8):
        h = connect(srv.port)
        h.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        h.setblocking(False)
        try:
            for _ in range(2000):
                h.send(b"x" * 60000 + b"\n")
        except BlockingIOError:
            pass
        hogs.append(h)
    p = probe_during(srv.port, 2.0, lambda: None)
    [h.close() for h in hogs]
    fds = srv.fds_back()
    _, c = srv.stop()
    ok = p.p99() < 0.05 and p.worst() < 0.5 and p.failed == 0
    return ok and adds_up(c) and fds, f"8 clients never reading their replies, 8 workers: probe p99 {ms(p.p99())}, worst {ms(p.worst())}"


def tricklers(a):
    srv = Tcpd(a.tcpd, ["--workers", "8"])
    stop = threading.Event()

    def trickle():
        s = connect(srv.port)
        while not stop.is_set():
            s.sendall(b"x")
            time.sleep(0.004)
        s.close()
    ts = [threading.Thread(target=trickle) for _ in range(8)]
    [t.start() for t in ts]
    time.sleep(0.1)
    p = probe_during(srv.port, 2.0, lambda: None)
    stop.set()
    [t.join(10) for t in ts]
    fds = srv.fds_back()
    _, c = srv.stop()
    ok = p.p99() < 0.05 and p.worst() < 0.5 and p.failed == 0
    return ok and adds_up(c) and fds, f"8 clients trickling a byte every 4 ms without a newline, 8 workers: probe p99 {ms(p.p99())}, worst {ms(p.worst())}"


def mass_close(a):
    n = a.clients
    srv = Tcpd(a.tcpd, ["--workers", "8", "--io-timeout-ms", "60000", "--idle-timeout-ms", "60000"])
    rss_before = srv.rss_kib()
    held = []
    payload = b"x" * 65535
    for _ in range(n):
        s = connect(srv.port)
        s.sendall(b"hi\n")  # a line client: no one-shot reply for what follows
        read_line(s)
        s.sendall(payload)
        held.append(s)
    end = time.monotonic() + 60
    while srv.rss_kib() < rss_before + n * 50 and time.monotonic() < end:
        time.sleep(0.05)
    rss_held = srv.rss_kib()

    def close_all():
        time.sleep(0.3)
        for s in held:
            s.close()
    p = probe_during(srv.port, 3.0, close_all)
    fds = srv.fds_back(60)
    time.sleep(2.5)  # the server trims freed memory after a quiet second
    rss_after = srv.rss_kib()
    _, c = srv.stop()
    ok = p.worst() < 0.1 and p.failed == 0 and rss_after < rss_before + 64 * 1024
    return ok and adds_up(c) and fds, f"{n} line clients holding 65,535 bytes, then all closing: probe worst {ms(p.worst())}; RSS {rss_before} -> {rss_held} -> {rss_after} KiB"


def scrapers(a):
    srv = Tcpd(a.tcpd, ["--metrics", "127.0.0.1:0"])
    line = srv.proc.stderr.readline()  # "... metrics on http://127.0.0.1:PORT/metrics"
    mport = int(re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line).group(1))
    silent = [connect(mport) for _ in range(20)]
    worst, body = 0.0, b""
    for _ in range(3):
        t = time.monotonic()
        s = connect(mport)
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        s.settimeout(25)
        body = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        worst = max(worst, time.monotonic() - t)
        s.close()
    [s.close() for s in silent]
    fds = srv.fds_back()
    _, c = srv.stop()
    ok = worst < 1.0 and b"tcpd_connections_accepted_total" in body
    return ok and adds_up(c) and fds, f"20 silent scrapers: a real scrape took at most {ms(worst)}"


SCENARIOS = {
    "half-close": half_close, "drain": drain, "stream": stream, "non-readers": non_readers,
    "tricklers": tricklers, "mass-close": mass_close, "scrapers": scrapers,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tcpd", default="build/release/bin/tcpd")
    ap.add_argument("--clients", type=int, default=2000, help="mass-close: clients (10000 in the issue)")
    ap.add_argument("scenario", nargs="*", help="names (default: all): " + ", ".join(SCENARIOS))
    a = ap.parse_args()
    global TCPC
    TCPC = os.path.join(os.path.dirname(a.tcpd), "tcpc")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    names = a.scenario or list(SCENARIOS)
    failed = 0
    for name in names:
        if name not in SCENARIOS:
            print(f"attack: unknown scenario {name} (known: {', '.join(SCENARIOS)})", file=sys.stderr)
            return 2
        try:
            ok, what = SCENARIOS[name](a)
        except Exception as e:  # a scenario that breaks is a failure, not a crash of the rest
            ok, what = False, f"error: {e!r}"
        failed += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {what}", flush=True)
    print(f"{len(names) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
