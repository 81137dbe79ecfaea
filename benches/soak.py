"""A soak test of `stroom serve`: mixed load at a fixed rate on loopback for a
bounded time, reporting errors, latency percentiles per minute, the server's
resident memory over time, and whether the audit log holds exactly one line
per request.

The load, per second: forecast reads, series queries and map renders of every
route in turn (RATE requests a second in all), an upload of one simulated
day every 30 s (ingest key), and a backtest job every 2 minutes (analyst
key). Every request is sent at its scheduled time by a pool of worker
threads; a request that is late because the pool is busy is counted late.

Usage: python3 benches/soak.py [--minutes 10] [--rate 20] [--demo DIR] [--out FILE]
  --demo DIR  a folder made by `stroom demo --dir DIR --no-serve` (made there
              when missing; about 2 minutes)
Environment: STROOM_BIN (default $CARGO_TARGET_DIR/release/stroom).
Targets: 0 errors; RSS flat within 10% after the first minute. Exits 0 either
way (it reports), non-zero only when it cannot run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROUTES = ("channel", "eastern-land-border", "western-balkans", "central-mediterranean")


def binary() -> str:
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/stroom/target"))
    path = os.environ.get("STROOM_BIN", os.path.join(target, "release", "stroom"))
    if not os.access(path, os.X_OK):
        sys.exit(f"no stroom binary at {path} (cargo build --release, or set STROOM_BIN)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def request(url: str, token: str, method: str = "GET", body: bytes | None = None, kind: str = "") -> tuple[int, float]:
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "text/csv" if kind == "upload" else "application/json"
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method=method, headers=headers), timeout=120) as answer:
            answer.read()
            status = answer.status
    except urllib.error.HTTPError as error:
        error.read()
        status = error.code
    except OSError:
        status = 0
    return status, time.perf_counter() - started


def upload_day(day: int) -> bytes:
    """One simulated hour-by-hour day of density near Calais, a day each upload."""
    date = time.strftime("%Y-%m-%d", time.gmtime(1_893_456_000 + day * 86_400))  # from 2030-01-01
    lines = ["ts,lat,lon,count"]
    for hour in range(24):
        for i in range(40):
            lines.append(f"{date}T{hour:02}:00:00Z,{50.9 + 0.01 * i:.2f},1.85,{20 + (i * 7 + hour) % 30}")
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=20, help="read requests per second")
    parser.add_argument("--demo", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    stroom = binary()
    work = Path(tempfile.mkdtemp(prefix="stroom-soak-"))
    demo = args.demo or work / "demo"
    if not (demo / "store").is_dir():
        print(f"[soak] making the demo in {demo} (about 2 minutes)", file=sys.stderr)
        subprocess.run([stroom, "demo", "--dir", str(demo), "--no-serve"], check=True, stdout=subprocess.DEVNULL)
    store = work / "store"
    shutil.copytree(demo / "store", store)
    keys, audit = work / "keys.toml", work / "audit.jsonl"
    token = {
        role: subprocess.run([stroom, "keys", "create", "--role", role, "--keys", str(keys)], check=True,
                             capture_output=True, text=True).stdout.strip()
        for role in ("viewer", "analyst", "ingest")
    }
    port = free_port()
    server = subprocess.Popen(
        [stroom, "serve", "--store", str(store), "--addr", f"127.0.0.1:{port}", "--keys", str(keys),
         "--audit", str(audit), "--jobs", str(work / "jobs.jsonl"), "--capacities", str(work / "capacities.toml")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    base = None
    for line in server.stdout:
        if line.startswith("listening on "):
            base = line.split()[-1]
            break
    if base is None:
        sys.exit("stroom serve did not start")
    threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()

    reads = []
    for route in ROUTES:
        reads.append(("forecast", f"{base}/v1/routes/{route}/forecast?horizon=14", "viewer"))
        reads.append(("series", f"{base}/v1/routes/{route}/series?from=2024-06-01&to=2024-09-01", "analyst"))
        reads.append(("map", f"{base}/v1/routes/{route}/map.svg", "viewer"))
        reads.append(("map", f"{base}/v1/routes/{route}/map.png", "viewer"))
    duration = args.minutes * 60
    results: list[tuple[float, str, int, float]] = []  # (time sent, kind, status, seconds)
    lock = threading.Lock()
    late = 0
    memory: list[tuple[float, int]] = []
    start = time.monotonic()

    def record(sent: float, kind: str, outcome: tuple[int, float]) -> None:
        with lock:
            results.append((sent, kind, *outcome))

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=16)
    futures = []
    step = 1.0 / args.rate
    n = 0
    next_upload, next_backtest, next_sample, uploads = 0.0, 5.0, 0.0, 0
    while (now := time.monotonic() - start) < duration:
        if now >= next_sample:
            memory.append((now, rss_kib(server.pid)))
            next_sample += 5
        if now >= next_upload:
            body = upload_day(uploads)
            url = f"{base}/v1/ingest/density?name=soak-{uploads}.csv"
            futures.append(pool.submit(lambda u=url, b=body, t=now: record(t, "upload", request(u, token["ingest"], "POST", b, "upload"))))
            uploads += 1
            next_upload += 30
        if now >= next_backtest:
            body = json.dumps({"target": "station:dover", "horizon": 7, "folds": 2, "step": 7,
                               "models": ["seasonal_naive", "naive"]}).encode()
            url = f"{base}/v1/backtests"
            futures.append(pool.submit(lambda u=url, b=body, t=now: record(t, "backtest", request(u, token["analyst"], "POST", b))))
            next_backtest += 120
        kind, url, role = reads[n % len(reads)]
        scheduled = n * step
        if now - scheduled > 0.5:
            late += 1
        futures.append(pool.submit(lambda u=url, r=role, k=kind, t=now: record(t, k, request(u, token[r]))))
        n += 1
        pause = (n * step) - (time.monotonic() - start)
        if pause > 0:
            time.sleep(pause)
    concurrent.futures.wait(futures)
    pool.shutdown()
    memory.append((time.monotonic() - start, rss_kib(server.pid)))
    server.terminate()
    server.wait(timeout=60)

    audit_lines = sum(1 for _ in open(audit))
    errors = [r for r in results if not (200 <= r[2] < 300)]
    minutes = int(duration // 60) + 1
    per_minute = []
    for m in range(minutes):
        latencies = [r[3] * 1e3 for r in results if m * 60 <= r[0] < (m + 1) * 60 and r[1] != "upload" and r[1] != "backtest"]
        if latencies:
            per_minute.append({"minute": m + 1, "requests": len(latencies), "p50_ms": round(percentile(latencies, 0.5), 2),
                               "p99_ms": round(percentile(latencies, 0.99), 2)})
    warm = [kib for t, kib in memory if t >= 60] or [kib for _, kib in memory]
    flat = (max(warm) - min(warm)) / min(warm) if warm and min(warm) else float("nan")
    report = {
        "minutes": args.minutes, "rate": args.rate, "requests": len(results), "late": late,
        "errors": len(errors), "error_statuses": sorted({r[2] for r in errors}),
        "uploads": sum(1 for r in results if r[1] == "upload"),
        "uploads_ok": sum(1 for r in results if r[1] == "upload" and r[2] in (200, 201)),
        "backtests_started": sum(1 for r in results if r[1] == "backtest" and r[2] == 202),
        "per_minute": per_minute,
        "rss_mib": [(round(t), round(kib / 1024, 1)) for t, kib in memory],
        "rss_spread_after_warmup": round(flat, 3),
        "audit_lines": audit_lines,
        "audit_matches_requests": audit_lines == len(results),
    }
    print(json.dumps(report, indent=1))
    print(
        f"[soak] {len(results)} requests in {args.minutes} min, {len(errors)} errors, late {late}; "
        f"RSS {min(warm) / 1024:.0f}-{max(warm) / 1024:.0f} MiB after the first minute "
        f"(spread {flat:.1%}, target within 10%); audit lines {audit_lines} "
        f"({'one per request' if audit_lines == len(results) else 'NOT one per request'})",
        file=sys.stderr,
    )
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
