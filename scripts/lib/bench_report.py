#!/usr/bin/env python3
"""Turns bench.sh's results.csv into medians, target ratios (summary.md) and PNG plots."""
import csv
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

csv_path, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = list(csv.DictReader(csv_path.open()))
groups = defaultdict(list)
for r in rows:
    groups[(r["section"], r["peer"], r["generator"], r["mode"], r["concurrency"], r["workers"])].append(r)


def med(section, peer, key, gen="loadgen", mode=None, conc=None, workers=None):
    vals = []
    for (s, p, g, m, c, w), rs in groups.items():
        if s != section or p != peer or g != gen:
            continue
        if (mode and m != mode) or (conc and c != str(conc)) or (workers and w != str(workers)):
            continue
        vals += [float(r[key]) for r in rs if r[key] not in ("", "?")]
    return statistics.median(vals) if vals else None


def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b not in (None, 0) else "n/a"


def fmt(v, digits=1):
    return "n/a" if v is None else f"{v:.{digits}f}"


lines = ["# Benchmark summary", "",
         "Medians of the repetitions in one run of `scripts/bench.sh matrix` (server on CPU 0, load on CPU 1).", ""]
if any(k[0] == "oneshot" for k in groups):
    inl, tp, td = (med("oneshot", p, "cpu_us_per_req") for p in ("inline-c", "threadpool-c", "tcpd"))
    rinl, rtp, rtd = (med("oneshot", p, "rps") for p in ("inline-c", "threadpool-c", "tcpd"))
    lines += ["## One-shot connections, 64 concurrent, 8 workers", "",
              "| server | rps | server CPU us/req |", "|---|---|---|",
              f"| inline-c (floor) | {fmt(rinl, 0)} | {fmt(inl, 2)} |",
              f"| threadpool-c (baseline) | {fmt(rtp, 0)} | {fmt(tp, 2)} |",
              f"| tcpd | {fmt(rtd, 0)} | {fmt(td, 2)} |", "",
              f"- tcpd CPU/req vs inline floor: **{ratio(td, inl)}** (target <= 1.05x)",
              f"- tcpd rps vs baseline: **{ratio(rtd, rtp)}** (target >= 1.0x)", ""]
if any(k[0] == "keepalive" for k in groups):
    tp, td = med("keepalive", "threadpool-c", "cpu_us_per_req"), med("keepalive", "tcpd", "cpu_us_per_req")
    rtp, rtd = med("keepalive", "threadpool-c", "rps"), med("keepalive", "tcpd", "rps")
    lines += ["## Keep-alive, 8 concurrent, 8 workers", "",
              "| server | rps | server CPU us/req |", "|---|---|---|",
              f"| threadpool-c (baseline) | {fmt(rtp, 0)} | {fmt(tp, 2)} |",
              f"| tcpd | {fmt(rtd, 0)} | {fmt(td, 2)} |", "",
              f"- tcpd CPU/req vs baseline: **{ratio(td, tp)}** (target <= 1.0x)",
              f"- tcpd rps vs baseline: **{ratio(rtd, rtp)}** (target >= 1.0x)", ""]
pool = []
if any(k[0] == "pool" for k in groups):
    lines += ["## Pool efficiency: --delay-ms 20, keep-alive, concurrency = workers", "",
              "| workers | rps | ideal (workers x 50) | efficiency |", "|---|---|---|---|"]
    for w in (1, 8, 64, 256):
        r = med("pool", "tcpd", "rps", workers=w)
        pool.append((w, r, w * 50, None if r is None else r / (w * 50)))
        lines.append(f"| {w} | {fmt(r, 0)} | {w * 50} | {ratio(r, w * 50)} |")
    lines += ["", "Target: efficiency >= 0.95x for every row.", ""]
fair = []
if any(k[0] == "fairness" for k in groups):
    lines += ["## Keep-alive sessions outnumbering 8 workers", "",
              "| clients | tcpd rps | tcpd p50 us | tcpd p99 us | tcpd errors | baseline rps | baseline errors |",
              "|---|---|---|---|---|---|---|"]
    for c in (8, 32, 64, 256):
        t = [med("fairness", "tcpd", k, conc=c) for k in ("rps", "p50_us", "p99_us", "errors")]
        b = [med("fairness", "threadpool-c", k, conc=c) for k in ("rps", "errors", "p50_us", "p99_us")]
        fair.append((c, *t, b[2], b[3], b[1]))
        lines.append(f"| {c} | {fmt(t[0], 0)} | {fmt(t[1], 0)} | {fmt(t[2], 0)} | {fmt(t[3], 0)} | {fmt(b[0], 0)} | {fmt(b[1], 0)} |")
    lines += ["", "The baseline serves only 8 clients; the others time out (loadgen --timeout-ms 1000).", ""]
if any(k[0] == "memory" for k in groups):
    lines += ["## Memory after 100,000 one-shot connections", "", "| workers | peak RSS KiB | peak PSS KiB |", "|---|---|---|"]
    for w in (8, 256):
        lines.append(f"| {w} | {fmt(med('memory', 'tcpd', 'srv_hwm_kb', workers=w), 0)} | {fmt(med('memory', 'tcpd', 'srv_pss_peak_kb', workers=w), 0)} |")
    lines += ["", "Targets: RSS <= 4096 KiB with 8 workers, <= 12288 KiB with 256.", ""]
if any(k[0] == "generator" for k in groups):
    lines += ["## tcpc against the reference load generator (alternating runs, client on one core)", "",
              "| server | mode | c | loadgen rps | tcpc rps | rps ratio | loadgen client CPU us/req | tcpc client CPU us/req | CPU ratio |",
              "|---|---|---|---|---|---|---|---|---|"]
    for peer in ("threadpool-c", "tcpd"):
        for mode, c in (("oneshot", 64), ("keepalive", 8), ("keepalive", 64)):
            a = med("generator", peer, "rps", gen="loadgen", mode=mode, conc=c)
            b = med("generator", peer, "rps", gen="tcpc", mode=mode, conc=c)
            ca = med("generator", peer, "cli_cpu_us_per_req", gen="loadgen", mode=mode, conc=c)
            cb = med("generator", peer, "cli_cpu_us_per_req", gen="tcpc", mode=mode, conc=c)
            if a is None and b is None:
                continue
            lines.append(f"| {peer} | {mode} | {c} | {fmt(a, 0)} | {fmt(b, 0)} | {ratio(b, a)} | {fmt(ca, 2)} | {fmt(cb, 2)} | {ratio(cb, ca)} |")
    lines += ["", "Targets: tcpc rps >= 1.0x the reference's, client CPU per request <= 1.0x.", ""]
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))

# Plots.
def plot(name, data, script):
    dat = out / f"{name}.dat"
    dat.write_text("\n".join(" ".join("nan" if v is None else str(v) for v in row) for row in data) + "\n")
    subprocess.run(["gnuplot"], input=script.replace("DAT", str(dat)).replace("PNG", str(out / f"{name}.png")),
                   text=True, check=False)

if pool:
    plot("throughput_vs_workers", pool, """
set terminal pngcairo size 800,500
set output 'PNG'
set title 'tcpd pool efficiency: rps / (workers x 50) with --delay-ms 20, keep-alive, clients = workers'
set xlabel 'workers'; set ylabel 'efficiency (rps / ideal)'; set logscale x; set yrange [0.8:1.02]
set key left bottom; set grid
plot 'DAT' using 1:4 with linespoints lw 2 title 'tcpd', 0.95 with lines dt 2 title 'target 0.95', 1 with lines dt 3 title 'ideal'
""")
if fair:
    plot("latency_vs_concurrency", fair, """
set terminal pngcairo size 900,520
set output 'PNG'
set title 'keep-alive latency vs clients on 8 workers (baseline: only the clients it served; the rest timed out)'
set xlabel 'concurrent keep-alive clients'; set ylabel 'latency (us)'; set logscale xy; set key left top; set grid
plot 'DAT' using 1:3 with linespoints lw 2 title 'tcpd p50', 'DAT' using 1:4 with linespoints lw 2 title 'tcpd p99', \\
     'DAT' using 1:6 with linespoints lw 2 dt 2 title 'threadpool baseline p50', 'DAT' using 1:7 with linespoints lw 2 dt 2 title 'threadpool baseline p99', \\
     'DAT' using 1:7:(sprintf("%d timed out", int($8))) with labels offset 0,1 font ',9' notitle
""")
