#!/usr/bin/env python3
"""Side by side: density ingest with stroom and with polars + polars-h3.

Both read the same simulated provider files (lat/lon form), convert points to
H3 cells at the same resolution, sum counts per (cell, hour), drop sums below
k, and write zstd Parquet partitioned by day and sorted by (cell, ts). Each
runs in its own process; the script reports wall time, rows/s and peak
resident memory of each, and checks that both wrote the same rows and totals.

Provider areas are fixed, so the simulated files repeat each area's coordinates
every hour, as real deliveries do; stroom memoises the cell of each coordinate
pair. `--unique-points` moves every row by its own sub-metre offset first, so
that no two rows share coordinates and every row needs a full H3 conversion in
both tools: the worst case for stroom's memo.

Usage: python3 benches/ingest_vs_polars.py [--rows 10000000] [--work DIR] [--unique-points]
Needs: the stroom release binary (cargo build --release --workspace --bins), and
`pip install polars polars-h3 pyarrow numpy`.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

RESOLUTION = 7
K = 15

POLARS_JOB = r"""
import sys, glob, polars as pl, polars_h3 as plh3
src, out, res, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
files = sorted(glob.glob(src + "/*.parquet"))
frame = (
    pl.scan_parquet(files)
    .with_columns(cell=plh3.latlng_to_cell("lat", "lon", res), ts=pl.col("ts").dt.truncate("1h"))
    .group_by(["cell", "ts"]).agg(pl.col("count").cast(pl.Int64).sum())
    .filter(pl.col("count") >= k)
    .with_columns(day=pl.col("ts").dt.date(), cell=pl.col("cell").cast(pl.Int64), count=pl.col("count").cast(pl.Int32))
    .sort(["day", "cell", "ts"])
    .collect()
)
frame.write_parquet(out, compression="zstd", partition_by="day")
print(frame.height, int(frame["count"].cast(pl.Int64).sum()))
"""


def stroom_binary():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "target"))
    path = os.path.join(target, "release", "stroom")
    if not os.path.exists(path):
        sys.exit(f"{path} is missing: cargo build --release --workspace --bins")
    return path


def measured(command):
    """Runs a command; returns (seconds, peak RSS in MiB, stdout)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    stdout, stderr = process.stdout.read(), process.stderr.read()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"{command[0]} failed:\n{stdout}\n{stderr}")
    return seconds, usage.ru_maxrss / 1024, stdout


def unique_points(source, out):
    """Copies the lat/lon files with every row moved by its own offset of at
    most 2e-6 degrees (a fifth of a metre): the same cells almost everywhere,
    but no repeated coordinate pair. Deterministic."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if os.path.exists(out + ".done"):
        return out
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    rng = np.random.default_rng(7)
    for name in sorted(os.listdir(source)):
        table = pq.read_table(os.path.join(source, name))
        n = table.num_rows
        lat = table.column("lat").to_numpy() + rng.uniform(-2e-6, 2e-6, n)
        lon = table.column("lon").to_numpy() + rng.uniform(-2e-6, 2e-6, n)
        table = table.set_column(table.schema.get_field_index("lat"), "lat", pa.array(lat))
        table = table.set_column(table.schema.get_field_index("lon"), "lon", pa.array(lon))
        pq.write_table(table, os.path.join(out, name), compression="zstd")
    open(out + ".done", "w").close()
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000, help="provider rows to generate, at least")
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--unique-points", action="store_true", help="give every row its own coordinates")
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="stroom-ingest-bench-")
    stroom = stroom_binary()

    sim = os.path.join(work, "sim")
    if not os.path.exists(os.path.join(sim, "manifest.json")):
        # About 172,000 rows per simulated day with two rings of buffer at scale 1.
        days = max(1, -(-args.rows // 172_000))
        subprocess.run([stroom, "simulate", "--out", sim, "--form", "latlon", "--days", str(days), "--no-closure"], check=True)
    manifest = json.load(open(os.path.join(sim, "manifest.json")))
    rows = manifest["report"]["density_rows"]
    source = os.path.join(sim, "density")
    if args.unique_points:
        source = unique_points(source, os.path.join(work, "unique"))

    store = os.path.join(work, "store")
    shutil.rmtree(store, ignore_errors=True)
    s_time, s_mem, s_out = measured([stroom, "ingest", "density", source, "--store", store, "--resolution", str(RESOLUTION), "--k", str(K)])
    written = next(line for line in s_out.splitlines() if "rows written" in line)

    polars_out = os.path.join(work, "polars")
    shutil.rmtree(polars_out, ignore_errors=True)
    p_time, p_mem, p_out = measured([sys.executable, "-c", POLARS_JOB, source, polars_out, str(RESOLUTION), str(K)])
    p_rows, p_total = map(int, p_out.split())

    from deltalake import DeltaTable
    table = DeltaTable(os.path.join(store, "density")).to_pyarrow_table()
    s_rows, s_total = table.num_rows, sum(table.column("count").to_pylist())
    if (s_rows, s_total) != (p_rows, p_total):
        sys.exit(f"outputs differ: stroom {s_rows} rows / {s_total} devices, polars {p_rows} / {p_total}")

    form = "lat/lon form, every row its own coordinates" if args.unique_points else "lat/lon form"
    print(f"input: {rows:,} provider rows ({form}) in {manifest['report']['density_files']} files; output {s_rows:,} rows, {s_total:,} devices, identical")
    print(f"stroom ingest        : {s_time:6.2f} s  {rows / s_time:>12,.0f} rows/s  peak RSS {s_mem:7.0f} MiB   ({written.strip()})")
    print(f"polars + polars-h3   : {p_time:6.2f} s  {rows / p_time:>12,.0f} rows/s  peak RSS {p_mem:7.0f} MiB")
    print(f"ratio stroom/polars  : {p_time / s_time:.2f}x throughput, {s_mem / p_mem:.2f}x memory")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # deltalake's runtime threads can abort a normal interpreter exit
