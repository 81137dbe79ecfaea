#!/usr/bin/env python3
"""Side by side: the Python package against the command line and DuckDB.

1. A backtest from Python (`stroom.backtest`) against the same backtest
   through the binary (`stroom backtest --no-record`), each in its own
   process, timed whole (interpreter start, import and store opening
   included); the target of the issue: Python within the CLI's time plus 5%.
   The forecasts of the two are checked to be equal.
2. 10 million density rows handed to pyarrow: `Store.sql(...)` against
   `duckdb.sql(...).arrow()` over exactly the same Parquet files (the files
   of the `density` table's current version for the first days, listed with
   the `deltalake` package), each in its own process, best of --repeat runs.
   The row counts and sums of the two are checked to be equal.

Usage: python3 benches/python_vs_cli.py --store stroom-demo/store [--target station:dover]
Needs: the stroom release binary, the package (`pip install ./python`) and
`pip install -r benches/requirements-python.txt` in the running interpreter.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

BACKTEST_JOB = r"""
import sys, stroom
store, target, folds, models, out = sys.argv[1:6]
result = stroom.backtest(stroom.Store(store), target, folds=int(folds), models=models.split(","), record=False)
result.write(out)
"""

STROOM_SQL = r"""
import sys, time, stroom
store, day = sys.argv[1:3]
started = time.perf_counter()
table = stroom.Store(store).sql(f"SELECT cell, ts, count FROM density WHERE day < DATE '{day}'")
seconds = time.perf_counter() - started
import pyarrow.compute as pc
print(seconds, table.num_rows, pc.sum(table.column("count")).as_py())
"""

DUCKDB_SQL = r"""
import sys, json, time, duckdb
files = json.load(open(sys.argv[1]))
where = sys.argv[2] if len(sys.argv) > 2 else ""
con = duckdb.connect()
con.execute("SET threads TO 2")
started = time.perf_counter()
table = con.sql(f"SELECT cell, ts, count FROM read_parquet({files!r}) {where}").arrow()
seconds = time.perf_counter() - started
import pyarrow.compute as pc
if hasattr(table, "read_all"):
    table = table.read_all()
print(seconds, table.num_rows, pc.sum(table.column("count")).as_py())
"""


def timed(command):
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True)
    parser.add_argument("--target", default="station:dover")
    parser.add_argument("--folds", type=int, default=20)
    parser.add_argument("--models", default="auto,ensemble,elasticnet,ets,moving_average,seasonal_naive,naive")
    parser.add_argument("--rows", type=int, default=10_000_000, help="density rows handed to pyarrow (about)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-backtest", action="store_true")
    parser.add_argument("--binary", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "stroom"))
    args = parser.parse_args()
    import deltalake
    import pyarrow
    import pyarrow.parquet

    with tempfile.TemporaryDirectory() as scratch:
        # 1. The backtest.
        cli, py = [], []
        for i in range(0 if args.skip_backtest else args.repeat):
            cli_out, py_out = os.path.join(scratch, f"cli{i}"), os.path.join(scratch, f"py{i}")
            cli.append(timed([args.binary, "backtest", "--store", args.store, "--target", args.target,
                              "--folds", str(args.folds), "--models", args.models, "--out", cli_out, "--no-record"]))
            py.append(timed([sys.executable, "-c", BACKTEST_JOB, args.store, args.target, str(args.folds),
                             args.models, py_out]))
        if not args.skip_backtest:
            a = pyarrow.parquet.read_table(os.path.join(scratch, "cli0", "forecasts.parquet"))
            b = pyarrow.parquet.read_table(os.path.join(scratch, "py0", "forecasts.parquet"))
            same = a.equals(b)
            print(f"backtest {args.target}, {args.folds} folds, models {args.models}")
            print(f"  cli    best {min(cli):7.2f} s   runs {', '.join(f'{t:.2f}' for t in cli)}")
            print(f"  python best {min(py):7.2f} s   runs {', '.join(f'{t:.2f}' for t in py)}")
            print(f"  python / cli = {min(py) / min(cli):.3f} (target <= 1.05); forecasts equal: {same}")

        # 2. Rows to pyarrow: the first days of density holding about --rows rows.
        table = deltalake.DeltaTable(os.path.join(args.store, "density"))
        actions = pyarrow.table(table.get_add_actions(flatten=True)).to_pylist()
        by_day = {}
        for action in actions:
            day = str(action["partition.day"])
            by_day.setdefault(day, []).append((action["path"], action["num_records"]))
        files, rows, last = [], 0, None
        for day in sorted(by_day):
            if rows >= args.rows:
                break
            for path, n in by_day[day]:
                files.append(os.path.join(args.store, "density", path))
                rows += n
            last = day
        end = (__import__("datetime").date.fromisoformat(last) + __import__("datetime").timedelta(days=1)).isoformat()
        listing = os.path.join(scratch, "files.json")
        json.dump(files, open(listing, "w"))
        everything = os.path.join(scratch, "all-files.json")
        json.dump([os.path.join(args.store, "density", a["path"]) for a in actions], open(everything, "w"))
        results = {"stroom Store.sql": [], "duckdb .arrow()": [], "duckdb, all files": []}
        for _ in range(args.repeat):
            for name, job, extra in (("stroom Store.sql", STROOM_SQL, [args.store, end]),
                                     ("duckdb .arrow()", DUCKDB_SQL, [listing]),
                                     ("duckdb, all files", DUCKDB_SQL, [everything, f"WHERE ts < TIMESTAMP '{end}'"])):
                out = subprocess.run([sys.executable, "-c", job, *extra], check=True, capture_output=True, text=True)
                seconds, n, total = out.stdout.split()
                results[name].append((float(seconds), int(n), int(total)))
        print(f"\n{rows:,} density rows ({len(files)} files, days before {end}) to a pyarrow.Table")
        for name, runs in results.items():
            print(f"  {name:<17} best {min(r[0] for r in runs):6.3f} s   rows {runs[0][1]:,}   sum {runs[0][2]:,}")
        s, d, a = (min(r[0] for r in results[k]) for k in results)
        agree = {(r[1], r[2]) for k in results for r in results[k]}
        print(f"  stroom / duckdb = {s / d:.3f} (target <= 1.0); against DuckDB over every file of the table "
              f"with the same filter: {s / a:.3f}; same rows and sums: {len(agree) == 1}")


if __name__ == "__main__":
    main()
