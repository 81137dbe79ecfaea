"""Validates closure scenarios on the simulator, where the truth is known.

Simulates two years with a closure of the Western Balkans route at Passau
whose stranded people divert to the Channel route, ingests the simulation
into a store, then makes the scenario (with the simulator's closure and
share) from cutoffs before the closure and compares the mean absolute error
at horizons 7-14 of the scenario and of the baseline forecast made from the
same data, at both destinations.

    python3 tests/validation/closure_scenario.py --stroom target/release/stroom --work closure-validation

Takes about ten minutes per share on two cores. Prints one table per share.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import subprocess
from pathlib import Path

START = dt.date(2024, 6, 1)
DAYS = 45


def run(*args: str) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def make_store(stroom: str, work: Path, share: float) -> Path:
    store = work / "store"
    if store.exists():
        return store
    sim = work / "sim"
    run(stroom, "simulate", "--out", str(sim), "--synthetic-channel",
        "--closure-at", "western-balkans/passau", "--closure-from", START.isoformat(),
        "--closure-days", str(DAYS), "--divert-to", "channel", "--divert-share", str(share))
    run(stroom, "ingest", "density", *sorted(str(p) for p in (sim / "density").glob("*.parquet")),
        "--store", str(store))
    run(stroom, "ingest", "arrivals", str(sim / "arrivals.csv"), "--store", str(store))
    return store


def actuals(sim: Path) -> dict[tuple[str, str], float]:
    with open(sim / "arrivals.csv", newline="") as f:
        return {(r["station"], r["date"]): float(r["count"]) for r in csv.DictReader(f)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stroom", required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--shares", default="0.2,0.05", help="the simulator's share of those held who divert each day")
    parser.add_argument("--cutoffs", type=int, default=7, help="cutoffs 1..N days before the closure")
    parser.add_argument("--divert-travel-days", type=int, help="the Channel's travel time, when given")
    args = parser.parse_args()
    for share in [float(s) for s in args.shares.split(",")]:
        work = args.work / f"share-{share}"
        store = make_store(args.stroom, work, share)
        truth = actuals(work / "sim")
        errors: dict[tuple[str, str], list[float]] = {}
        for k in range(1, args.cutoffs + 1):
            cutoff = START - dt.timedelta(days=k)
            out = work / f"scenario-{cutoff}.csv"
            run(args.stroom, "scenario", "--store", str(store), "--route", "western-balkans",
                "--close", "passau-ter-apel", "--from", START.isoformat(),
                "--until", (START + dt.timedelta(days=DAYS)).isoformat(),
                "--divert-to", "channel", "--share", str(share), "--as-of", cutoff.isoformat(),
                "--no-record", "--csv", str(out),
                *(["--divert-travel-days", str(args.divert_travel_days)] if args.divert_travel_days else []))
            with open(out, newline="") as f:
                for r in csv.DictReader(f):
                    if not 7 <= int(r["horizon"]) <= 14:
                        continue
                    station = r["target"].removeprefix("station:")
                    actual = truth.get((station, r["date"]))
                    if actual is not None:
                        errors.setdefault((station, r["variant"]), []).append(abs(float(r["mean"]) - actual))
        print(f"\nshare {share}: closure of passau-ter-apel from {START} for {DAYS} days, diverting to channel; "
              f"cutoffs 1..{args.cutoffs} days before; Channel travel time "
              f"{args.divert_travel_days or 'estimated'}; MAE of the mean at horizons 7-14")
        print(f"{'station':<12} {'baseline':>9} {'scenario':>9} {'change':>8} {'days':>5}")
        for station in sorted({s for s, _ in errors}):
            b, s = errors[(station, "baseline")], errors[(station, "scenario")]
            mb, ms = sum(b) / len(b), sum(s) / len(s)
            print(f"{station:<12} {mb:>9.1f} {ms:>9.1f} {100 * (ms - mb) / mb:>+7.0f}% {len(b):>5}")


if __name__ == "__main__":
    main()
