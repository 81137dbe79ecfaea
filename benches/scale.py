#!/usr/bin/env python3
"""The scale curve: simulate, ingest and query one store at growing sizes.

For each size (days of simulation on every shipped route; about 172,000
density rows a day), the provider files are simulated once and ingested
twice: into a local folder and into an S3 server on a loopback port (moto's,
as in the tests). For each store it measures the ingest's wall time, rows/s
and peak RSS (of the `stroom` process, from wait4), the bytes on the store
per density row, and the time of a route series over the last year of data
(best of three), with the local engine and on a Ballista cluster of one
scheduler and two executors (one task slot each) on loopback ports. Prints a
Markdown table; `--json FILE` also writes the figures.

Usage: python3 benches/scale.py [--days 60 600] [--route western-balkans]
       [--skip-s3] [--skip-cluster] [--work DIR]
Environment: STROOM_BIN (default $CARGO_TARGET_DIR/release/stroom, with
CARGO_TARGET_DIR defaulting to $HOME/.cache/stroom/target).
Needs moto[server] and boto3 (tests/requirements.txt) for the S3 rows.
"""

import argparse
import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KEY, SECRET = "scale-test", "scale-test-secret"


def stroom_bin() -> str:
    if os.environ.get("STROOM_BIN"):
        return os.environ["STROOM_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/stroom/target"))
    return str(Path(target) / "release/stroom")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measured(cmd, env=None):
    """Runs cmd; returns (seconds, stdout)."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return seconds, proc.stdout


def measured_rss(cmd, env=None):
    """Runs cmd; returns (seconds, peak RSS MiB, stdout) using wait4 for this child alone."""
    started = time.perf_counter()
    out_file = tempfile.TemporaryFile(mode="w+")
    err_file = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, env=env, stdout=out_file, stderr=err_file)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    out_file.seek(0)
    err_file.seek(0)
    out = out_file.read()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out}\n{err_file.read()}")
    return seconds, usage.ru_maxrss / 1024, out


class S3:
    def __init__(self):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import boto3
        self.client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=KEY,
                                   aws_secret_access_key=SECRET, region_name="us-east-1")
        deadline = time.time() + 60
        while True:
            try:
                self.client.list_buckets()
                break
            except Exception:
                if time.time() > deadline:
                    sys.exit("the S3 server did not start")
                time.sleep(0.2)
        self.client.create_bucket(Bucket="scale")
        self.env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION="us-east-1",
                        AWS_ENDPOINT_URL=self.endpoint, AWS_ALLOW_HTTP="true")

    def bytes_under(self, prefix: str) -> int:
        total = 0
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket="scale", Prefix=prefix):
            total += sum(o["Size"] for o in page.get("Contents", []))
        return total

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Cluster:
    def __init__(self, binary: str, env):
        self.procs = []
        port = free_port()
        self.url = f"df://127.0.0.1:{port}"
        self.start([binary, "scheduler", "--bind", f"127.0.0.1:{port}"], "scheduler listening", env)
        for _ in range(2):
            flight = free_port()
            grpc = free_port()
            self.start([binary, "executor", "--scheduler", f"127.0.0.1:{port}", "--bind", f"127.0.0.1:{flight}",
                        "--grpc-port", str(grpc), "--concurrent-tasks", "1", "--heartbeat-interval", "1"],
                       "executor registered", env)

    def start(self, cmd, ready, env):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.procs.append(proc)
        for line in proc.stdout:
            if ready in line:
                return
        self.stop()
        sys.exit(f"{' '.join(cmd)} did not start")

    def stop(self):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait()


def series_seconds(binary, store, route, start, end, env, cluster=None):
    cmd = [binary, "series", "--store", store, "--route", route, "--from", start, "--to", end, "--csv"]
    if cluster:
        cmd += ["--cluster", cluster]
    best, out = None, ""
    for _ in range(3):
        seconds, out = measured(cmd, env)
        best = seconds if best is None else min(best, seconds)
    return best, out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, nargs="+", default=[60, 600])
    parser.add_argument("--route", default="western-balkans")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    binary = stroom_bin()
    work = args.work or Path(tempfile.mkdtemp(prefix="stroom-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    s3 = None if args.skip_s3 else S3()
    results = []
    try:
        for days in args.days:
            sim = work / f"sim-{days}"
            if not (sim / "manifest.json").exists():
                seconds, out = measured([binary, "simulate", "--out", str(sim), "--days", str(days), "--seed", str(args.seed)])
                print(out.strip().splitlines()[-1], file=sys.stderr)
            manifest = json.loads((sim / "manifest.json").read_text())
            start = dt.date.fromisoformat(manifest["params"]["start"])
            end = start + dt.timedelta(days=days)
            year_start = max(start, end - dt.timedelta(days=365))
            stores = [("local", str(work / f"store-{days}"), dict(os.environ))]
            if s3:
                stores.append(("s3", f"s3://scale/store-{days}", s3.env))
            for kind, store, env in stores:
                if kind == "local" and Path(store).exists():
                    shutil.rmtree(store)
                seconds, rss, out = measured_rss([binary, "ingest", "density", str(sim / "density"), "--store", store], env)
                rows = int(re.search(r"(\d+) rows written", out).group(1))
                if kind == "local":
                    size = sum(f.stat().st_size for f in Path(store).rglob("*") if f.is_file())
                else:
                    size = s3.bytes_under(f"store-{days}/")
                local_s, local_out = series_seconds(binary, store, args.route, str(year_start), str(end), env)
                row = {"days": days, "store": kind, "rows": rows, "ingest_s": round(seconds, 2),
                       "rows_per_s": round(rows / seconds), "peak_rss_mib": round(rss), "bytes_per_row": round(size / rows, 2),
                       "series_local_s": round(local_s, 3)}
                if not args.skip_cluster:
                    cluster = Cluster(binary, env)
                    try:
                        cluster_s, cluster_out = series_seconds(binary, store, args.route, str(year_start), str(end), env, cluster.url)
                    finally:
                        cluster.stop()
                    if cluster_out != local_out:
                        sys.exit(f"the cluster's series differs from the local one ({kind}, {days} days)")
                    row["series_cluster_s"] = round(cluster_s, 3)
                results.append(row)
                print(json.dumps(row), file=sys.stderr)
    finally:
        if s3:
            s3.stop()
    print("| days | store | density rows | ingest s | rows/s | peak RSS MiB | bytes/row | 1-year series, local s | on the cluster s |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['days']} | {r['store']} | {r['rows']:,} | {r['ingest_s']} | {r['rows_per_s']:,} | {r['peak_rss_mib']} | "
              f"{r['bytes_per_row']} | {r['series_local_s']} | {r.get('series_cluster_s', '-')} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
