#!/usr/bin/env python3
"""Side by side: the route-series query in stroom and in DuckDB.

The query: daily device sums per segment of one route over one year, from
the same Parquet files of a store's `density` table (at least 100 million
rows; `stroom demo` builds one with 126 million). stroom runs
`stroom series`, which turns the route's cells into cell-index ranges that
Parquet statistics prune; DuckDB runs plain SQL over the same files with the
same cell list (a join with a table of the route's cells). Each runs in its
own process; the script reports wall time and peak RSS of each (best of
--repeat runs), checks that both give the same sums, and prints the ratio.

Daily series in stroom read the store's daily rollup (`density_daily`, one
row per cell and day) when it is complete for the density version read. So
that the comparison stays like for like, DuckDB then also runs the query on
the rollup's files, and the ratio is given against both DuckDB runs. DuckDB
reads exactly the files of each table's current version (listed with the
`deltalake` package), never a stray file in the table's folder; the rollup
run is made only when stroom reads the rollup itself.

Usage: python3 benches/query_vs_duckdb.py --store stroom-demo/store [--route channel] [--year 2024]
Needs: the stroom release binary, `pip install duckdb deltalake`.
"""

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import time

DUCKDB_JOB = r"""
import sys, json, duckdb
form, files_json, cells_json, start, end = sys.argv[1:6]
files = json.load(open(files_json))
cells = json.load(open(cells_json))
con = duckdb.connect()
con.execute("SET threads TO 2")
con.execute("CREATE TABLE route_cells(name VARCHAR, cell BIGINT)")
con.executemany("INSERT INTO route_cells VALUES (?, ?)", cells)
if form == "hourly":
    source = f"read_parquet({files!r}, hive_partitioning = false)"
    day, devices = "CAST(d.ts AS DATE)", "CAST(d.count AS BIGINT)"
    window = f"d.ts >= TIMESTAMPTZ '{start} 00:00:00+00' AND d.ts < TIMESTAMPTZ '{end} 00:00:00+00'"
else:  # the daily rollup: one row per cell and day
    source = f"read_parquet({files!r})"
    day, devices = "d.day", "d.devices"
    window = f"d.day >= DATE '{start}' AND d.day < DATE '{end}'"
sql = (
    f"SELECT g.name, {day} AS day, SUM({devices}) AS devices "
    f"FROM {source} d JOIN route_cells g ON d.cell = g.cell "
    f"WHERE {window} GROUP BY g.name, day ORDER BY g.name, day"
)
for name, day, devices in con.execute(sql).fetchall():
    print(f"{name},{day},{devices}")
"""


def stroom_binary():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "target"))
    path = os.path.join(target, "release", "stroom")
    if not os.path.exists(path):
        sys.exit(f"{path} is missing: cargo build --release -p stroom")
    return path


def measured(command):
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        sys.exit(f"{command[:3]} failed:\n{stderr}")
    return seconds, stdout


def peak_rss(command):
    """Peak RSS (MiB) of a command, by GNU time."""
    result = subprocess.run(["/usr/bin/time", "-f", "%M", *command], capture_output=True, text=True)
    return int(result.stderr.strip().splitlines()[-1]) / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--route", default="channel")
    parser.add_argument("--year", type=int, default=2024)
    parser.add_argument("--buffer", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    stroom = stroom_binary()
    start, end = f"{args.year}-01-01", f"{args.year + 1}-01-01"

    # The route's cells, exactly as stroom derives them.
    geojson = json.loads(subprocess.run([stroom, "routes", "--geojson", args.route, "--buffer", str(args.buffer)], check=True, capture_output=True, text=True).stdout)
    cells = [[f["properties"]["segment"], int(f["properties"]["hex_id"], 16)] for f in geojson["features"] if f["properties"]["kind"] == "cell"]
    cells_json = os.path.join(args.store, "..", f"bench-cells-{args.route}.json")
    json.dump(cells, open(cells_json, "w"))
    def committed(table):
        """A JSON file listing the table's files at its current version."""
        from deltalake import DeltaTable

        uris = [u.removeprefix("file://") for u in DeltaTable(os.path.join(args.store, table)).file_uris()]
        path = os.path.join(args.store, "..", f"bench-files-{table}.json")
        json.dump(uris, open(path, "w"))
        return path

    files = committed("density")
    rows = subprocess.run([stroom, "query", "--store", args.store, "--format", "csv", "SELECT count(*) AS n FROM density_files"], check=True, capture_output=True, text=True).stdout.splitlines()[1]

    stroom_cmd = [stroom, "series", "--store", args.store, "--route", args.route, "--from", start, "--to", end, "--buffer", str(args.buffer), "--csv"]
    duck_cmd = [sys.executable, "-c", DUCKDB_JOB, "hourly", files, cells_json, start, end]
    # stroom registers density_daily only when the rollup is complete for
    # the density version it reads.
    has_daily = subprocess.run([stroom, "query", "--store", args.store, "SELECT 1 FROM density_daily LIMIT 1"], capture_output=True).returncode == 0
    daily_cmd = [sys.executable, "-c", DUCKDB_JOB, "daily", committed("density_daily"), cells_json, start, end] if has_daily else None
    s_times, d_times, dd_times = [], [], []
    for _ in range(args.repeat):
        t, s_out = measured(stroom_cmd)
        s_times.append(t)
        t, d_out = measured(duck_cmd)
        d_times.append(t)
        if has_daily:
            t, dd_out = measured(daily_cmd)
            dd_times.append(t)

    def parse(out):
        return [(n, d, int(v)) for n, d, v in (line.split(",") for line in out.splitlines())]

    s_rows = [(r["name"], r["time"], int(r["devices"])) for r in csv.DictReader(io.StringIO(s_out))]
    d_rows = parse(d_out)
    if s_rows != d_rows:
        sys.exit(f"results differ: stroom {len(s_rows)} rows, duckdb {len(d_rows)} rows; first: {s_rows[:2]} vs {d_rows[:2]}")
    if has_daily and parse(dd_out) != d_rows:
        sys.exit("results differ: duckdb on the daily rollup and on the hourly files")
    s_mem, d_mem = peak_rss(stroom_cmd), peak_rss(duck_cmd)
    s_best, d_best = min(s_times), min(d_times)
    print(f"store: {int(rows):,} density rows; route {args.route} ({len(cells):,} cells), {start} .. {end}: {len(s_rows)} segment-days, identical results")
    print(f"stroom series        : best {s_best:6.3f} s of {args.repeat} (process, including start-up)  peak RSS {s_mem:6.0f} MiB")
    print(f"duckdb, hourly files : best {d_best:6.3f} s of {args.repeat} (process, including start-up)  peak RSS {d_mem:6.0f} MiB")
    if has_daily:
        dd_best, dd_mem = min(dd_times), peak_rss(daily_cmd)
        print(f"duckdb, daily rollup : best {dd_best:6.3f} s of {args.repeat} (process, including start-up)  peak RSS {dd_mem:6.0f} MiB")
        print(f"ratio stroom/duckdb time: {s_best / d_best:.2f} against the hourly files, {s_best / dd_best:.2f} against the same rollup")
    else:
        print(f"ratio stroom/duckdb time: {s_best / d_best:.2f}")


if __name__ == "__main__":
    main()
