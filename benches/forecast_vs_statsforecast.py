#!/usr/bin/env python3
"""Side by side: stroom's forecast backtest and statsforecast's cross-validation.

Both forecast the same daily arrival series of one or more stations, read from
a stroom store (a folder of Delta tables; the store of `stroom demo` is
`stroom-demo/store` by default). For each target `station:ID` the script:

1. runs `stroom backtest --store DIR --target station:ID --horizon H --folds F
   --step S --models auto,seasonal_naive,naive,moving_average,ets,elasticnet,ensemble
   --out OUT/stroom-ID` in its own process, timing its wall time and reading
   its peak RSS. stroom writes `forecasts.parquet` (columns target, model,
   cutoff, date, horizon, actual, mean, q10, q50, q90, lo80, hi80, lo95, hi95;
   one row per model, fold and horizon day; date = cutoff + horizon days) and
   `metrics.csv` (one row per model and horizon, plus a row with horizon
   `all`). The models compared are the ones found in forecasts.parquet; its
   `actual` column must equal the store's series. stroom runs (and is
   checked) before statsforecast, so a broken stroom output fails early.
2. reads the station's series from `DIR/arrivals` (columns station, date,
   count) with the `deltalake` package, sorted by date. Days missing between
   the first and the last date are filled with 0 arrivals (the number filled
   is printed).
3. runs statsforecast in a child process of this script:
   `StatsForecast(models=[AutoETS(season_length=7), AutoARIMA(season_length=7),
   AutoTheta(season_length=7), SeasonalNaive(season_length=7)], freq='D',
   n_jobs=1).cross_validation(df, h=H, n_windows=F, step_size=S, level=[80, 95])`,
   twice. The first call ("cold") pays the one-time costs of a fresh process
   (numba JIT compilation in statsforecast 1.x, first-call set-up in 2.x); the
   second ("warm") does not. Only the two calls are timed (not the imports
   nor reading the series); the peak RSS is that of the child process.
4. checks that both tools forecast from the same cutoffs, fold by fold, and
   fails if not. The fold convention is statsforecast's: with the last date
   of the series `last`, fold i = 0..F-1 is trained on the days up to and
   including the cutoff `last - H - (F-1-i)*S` and forecasts the H days
   `cutoff + 1 .. cutoff + H`, so the last fold ends on the last date.
5. scores every model of both tools with one metric function, against the
   actuals of the store's series:
   - MAE and RMSE of the point forecast over all folds and horizon days
     (stroom's point forecast is its `q50` column, statsforecast's the
     model's own column);
   - MASE: per fold, the MAE over the fold's H days divided by the mean
     |y_t - y_{t-7}| over the series up to and including the fold's cutoff,
     then averaged over the folds;
   - coverage80 and coverage95: the share of actuals inside [lo, hi]
     (stroom's lo80/hi80 and lo95/hi95, statsforecast's `Model-lo-80`,
     `Model-hi-80`, `Model-lo-95`, `Model-hi-95`).
   Nothing is clipped. A seasonal-naive forecast computed here from the series
   (y of the same weekday in the last week up to the cutoff) is scored too,
   as the reference row.
6. prints one markdown table per target (tool, model, MASE, MAE, RMSE,
   coverage80, coverage95), the wall time and peak RSS of each tool, and a
   summary line: MASE of stroom's `auto` over statsforecast's best model
   (lowest MASE), statsforecast's warm and cold wall time over stroom's, and
   whether the targets are met (stroom auto MASE <= statsforecast best MASE;
   stroom at least 10x faster than statsforecast warm for the whole backtest).
   stroom's wall time covers its whole process (start, reading the store,
   all models and folds, writing the outputs); statsforecast's only the
   cross_validation call.

It also reads stroom's own metrics.csv and compares the overall (`all`) MASE
and coverage of each model with the ones computed here; a difference above
1e-6 is a warning, not a failure.

Run time: statsforecast dominates it. AutoARIMA takes most of each
cross_validation call: about 6 s per fold on a two-year series and 50 s per
fold on the eight-and-a-half-year `dover` series of the demo store, so the
default 20 folds, run twice, take over half an hour for `dover` on two cores.
`--skip-stroom` (a development flag, not in --help) runs only the
statsforecast half and the reference.

Usage:
    python3 benches/forecast_vs_statsforecast.py --store stroom-demo/store \\
        --target station:dover --target station:ter-apel
    [--horizon 14 --folds 20 --step 7] [--out DIR] [--json results.json]
    [--stroom PATH]   default $CARGO_TARGET_DIR/release/stroom, else target/release/stroom
Needs: the stroom release binary (cargo build --release -p stroom), a store
from `stroom demo` (default folder `stroom-demo`), and
`pip install -r benches/requirements-forecast.txt`.
"""

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

STROOM_MODELS = "auto,seasonal_naive,naive,moving_average,ets,elasticnet,ensemble"
SF_MODELS = ["AutoETS", "AutoARIMA", "AutoTheta", "SeasonalNaive"]
SEASON = 7
LEVELS = (80, 95)
TOLERANCE = 1e-6
SPEED_TARGET = 10.0


class Failure(Exception):
    """A check that makes the comparison meaningless."""


# ---------------------------------------------------------------- processes


def measured(command, log_prefix):
    """Runs a command with its output in log files; returns (seconds, peak RSS MiB, stdout)."""
    with open(log_prefix + ".stdout", "w") as out, open(log_prefix + ".stderr", "w") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stdout = open(log_prefix + ".stdout").read()
    if process.returncode != 0:
        stderr = open(log_prefix + ".stderr").read()
        raise Failure(f"{' '.join(command)} exited with {process.returncode}:\n{stdout}\n{stderr}")
    return seconds, usage.ru_maxrss / 1024, stdout


def default_stroom():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target")
    return os.path.normpath(os.path.join(target, "release", "stroom"))


def statsforecast_job(series_path, out_path, horizon, folds, step):
    """Child process: two timed cross-validation calls; prints timings as JSON."""
    started = time.perf_counter()
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, SeasonalNaive

    imported = time.perf_counter() - started
    df = pd.read_parquet(series_path)
    timings = []
    cv = None
    for _ in range(2):
        sf = StatsForecast(
            models=[AutoETS(season_length=SEASON), AutoARIMA(season_length=SEASON),
                    AutoTheta(season_length=SEASON), SeasonalNaive(season_length=SEASON)],
            freq="D",
            n_jobs=1,
        )
        started = time.perf_counter()
        cv = sf.cross_validation(df=df, h=horizon, n_windows=folds, step_size=step, level=list(LEVELS))
        timings.append(time.perf_counter() - started)
    if "unique_id" not in cv.columns:
        cv = cv.reset_index()
    cv.to_parquet(out_path, index=False)
    import statsforecast

    print(json.dumps({"import_s": imported, "cold_s": timings[0], "warm_s": timings[1],
                      "version": statsforecast.__version__}))


# ---------------------------------------------------------------- data


def read_series(store, station):
    """The station's daily counts, sorted by date, missing days filled with 0."""
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    table = DeltaTable(os.path.join(store, "arrivals")).to_pyarrow_table(columns=["station", "date", "count"])
    table = table.filter(pc.equal(table["station"], station))
    if table.num_rows == 0:
        raise Failure(f"station {station!r} has no rows in {os.path.join(store, 'arrivals')}")
    frame = table.to_pandas()
    frame["date"] = pd.to_datetime(frame["date"])
    if frame["date"].duplicated().any():
        raise Failure(f"station {station!r} has more than one row for a day")
    frame = frame.sort_values("date").set_index("date")["count"].astype(float)
    days = pd.date_range(frame.index[0], frame.index[-1], freq="D")
    filled = len(days) - len(frame)
    return frame.reindex(days, fill_value=0.0), filled


def dates(timestamps):
    return [str(t.date()) for t in timestamps]


def expected_cutoffs(series, horizon, folds, step):
    last = series.index[-1]
    return [last - pd.Timedelta(days=horizon + (folds - 1 - i) * step) for i in range(folds)]


def mase_scales(series, cutoffs):
    """Mean |y_t - y_{t-7}| over the series up to and including each cutoff."""
    y = series.to_numpy()
    diffs = np.abs(y[SEASON:] - y[:-SEASON])
    cumulative = np.concatenate([[0.0], np.cumsum(diffs)])
    scales = {}
    for cutoff in cutoffs:
        k = series.index.get_loc(cutoff)  # position of the cutoff; diffs 0..k-7 end at it
        if k < SEASON:
            raise Failure(f"cutoff {cutoff.date()} leaves fewer than {SEASON + 1} training days")
        scales[cutoff] = cumulative[k - SEASON + 1] / (k - SEASON + 1)
    return scales


def reference_forecasts(series, cutoffs, horizon):
    """Seasonal naive computed here: the same weekday in the last week up to the cutoff."""
    rows = []
    for cutoff in cutoffs:
        k = series.index.get_loc(cutoff)
        for h in range(1, horizon + 1):
            source = k + h - SEASON * math.ceil(h / SEASON)
            rows.append((cutoff, cutoff + pd.Timedelta(days=h), float(series.iloc[source])))
    frame = pd.DataFrame(rows, columns=["cutoff", "date", "point"])
    for level in LEVELS:
        frame[f"lo{level}"] = np.nan
        frame[f"hi{level}"] = np.nan
    return frame


# ---------------------------------------------------------------- metrics


def score(forecasts, series, scales):
    """The one metric function for every tool and model.

    forecasts: columns cutoff, date, point, lo80, hi80, lo95, hi95 (one row per
    fold and horizon day). Actuals come from the store's series."""
    frame = forecasts.copy()
    frame["actual"] = series.reindex(frame["date"]).to_numpy()
    if frame["actual"].isna().any():
        raise Failure("forecast dates outside the series")
    error = frame["actual"] - frame["point"]
    frame["abs_error"] = error.abs()
    with np.errstate(divide="ignore", invalid="ignore"):
        fold_mae = frame.groupby("cutoff")["abs_error"].mean()
        fold_scale = np.array([scales[cutoff] for cutoff in fold_mae.index])
        mase = float(np.mean(fold_mae.to_numpy() / fold_scale))
    result = {
        "mase": mase,
        "mae": float(frame["abs_error"].mean()),
        "rmse": float(np.sqrt(np.mean(error.to_numpy() ** 2))),
        "folds": int(fold_mae.size),
        "rows": int(len(frame)),
    }
    for level in LEVELS:
        lo, hi = frame[f"lo{level}"], frame[f"hi{level}"]
        if lo.isna().any() or hi.isna().any():
            result[f"coverage{level}"] = None
        else:
            result[f"coverage{level}"] = float(((frame["actual"] >= lo) & (frame["actual"] <= hi)).mean())
    return result


# ---------------------------------------------------------------- stroom side


def target_rows(frame, column, target, station, source):
    values = set(frame[column].astype(str).unique())
    if target in values:
        return frame[frame[column].astype(str) == target]
    if station in values:
        return frame[frame[column].astype(str) == station]
    if len(values) == 1:
        return frame
    raise Failure(f"{source} has targets {sorted(values)} and none is {target}")


def stroom_forecasts(path, target, station, horizon):
    """Per model: frame of cutoff, date, point (q50), intervals, stroom's actual."""
    frame = pd.read_parquet(path)
    missing = {"target", "model", "cutoff", "date", "horizon", "actual", "q50", "lo80", "hi80", "lo95", "hi95"} - set(frame.columns)
    if missing:
        raise Failure(f"{path} lacks columns {sorted(missing)}")
    frame = target_rows(frame, "target", target, station, path)
    frame = frame.assign(cutoff=pd.to_datetime(frame["cutoff"]).dt.normalize(),
                         date=pd.to_datetime(frame["date"]).dt.normalize(),
                         horizon=frame["horizon"].astype(int))
    wrong = frame[frame["date"] != frame["cutoff"] + pd.to_timedelta(frame["horizon"], unit="D")]
    if len(wrong):
        raise Failure(f"{path}: {len(wrong)} rows where date != cutoff + horizon days")
    if frame["horizon"].min() != 1 or frame["horizon"].max() != horizon:
        raise Failure(f"{path}: horizons {frame['horizon'].min()}..{frame['horizon'].max()}, expected 1..{horizon}")
    models = {}
    for model in frame["model"].astype(str).unique():
        rows = frame[frame["model"].astype(str) == model].rename(columns={"q50": "point"})
        models[model] = rows[["cutoff", "date", "point", "lo80", "hi80", "lo95", "hi95", "actual"]].reset_index(drop=True)
    return models


def stroom_metrics_csv(path, target, station):
    """Per model: the `all` row of stroom's metrics.csv."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    frame = pd.DataFrame(rows)
    if frame.empty or "model" not in frame.columns or "horizon" not in frame.columns:
        raise Failure(f"{path} has no model/horizon rows")
    if "target" in frame.columns:
        frame = target_rows(frame, "target", target, station, path)
    frame = frame[frame["horizon"].astype(str) == "all"]
    return {row["model"]: row for _, row in frame.iterrows()}


def cross_check(metrics_rows, scores):
    """Largest |stroom's metrics.csv - computed here| per metric; prints a warning above TOLERANCE."""
    diffs = {}
    for metric in ("mase", "coverage80", "coverage95"):
        worst, where = 0.0, None
        for model, score_ in scores.items():
            row = metrics_rows.get(model)
            if row is None or metric not in row or row[metric] in ("", None) or score_.get(metric) is None:
                continue
            diff = abs(float(row[metric]) - score_[metric])
            if not diff <= worst:  # also catches NaN
                worst, where = diff, model
        diffs[metric] = {"max_abs_diff": worst, "model": where}
    only_csv = sorted(set(metrics_rows) - set(scores))
    only_parquet = sorted(set(scores) - set(metrics_rows))
    if only_csv or only_parquet:
        print(f"warning: models only in metrics.csv {only_csv}, only in forecasts.parquet {only_parquet}")
    for metric, found in diffs.items():
        note = f" ({found['model']})" if found["model"] else ""
        line = f"metrics.csv vs computed here, max |diff| of {metric}: {found['max_abs_diff']:.3g}{note}"
        print(("warning: " if not found["max_abs_diff"] <= TOLERANCE else "") + line)
    return diffs


# ---------------------------------------------------------------- report


def finite(value):
    """JSON-safe copy: NaN and infinities become null."""
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def fmt(value, digits):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def print_table(target, rows, runs):
    print(f"\n### {target}\n")
    print("| tool | model | MASE | MAE | RMSE | coverage80 | coverage95 |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for tool, model, s in rows:
        print(f"| {tool} | {model} | {fmt(s['mase'], 4)} | {fmt(s['mae'], 2)} | {fmt(s['rmse'], 2)} "
              f"| {fmt(s['coverage80'], 3)} | {fmt(s['coverage95'], 3)} |")
    print("\n| tool | run | wall time (s) | peak RSS (MiB) |")
    print("| --- | --- | ---: | ---: |")
    for tool, run, seconds, rss in runs:
        print(f"| {tool} | {run} | {fmt(seconds, 3)} | {fmt(rss, 1)} |")
    print()


def bench_target(args, target, out):
    kind, _, station = target.partition(":")
    if kind != "station" or not station:
        raise Failure(f"target {target!r} is not station:ID")
    H, F, S = args.horizon, args.folds, args.step
    result = {"target": target, "horizon": H, "folds": F, "step": S}

    series, filled = read_series(args.store, station)
    print(f"{target}: {len(series)} days {series.index[0].date()}..{series.index[-1].date()}, "
          f"{filled} missing days filled with 0")
    result["series"] = {"days": len(series), "first": str(series.index[0].date()),
                        "last": str(series.index[-1].date()), "filled_days": filled}
    cutoffs = expected_cutoffs(series, H, F, S)
    scales = mase_scales(series, cutoffs)

    # stroom, first: its checks fail before the long statsforecast run
    stroom_scores, stroom_run, stroom_cutoffs = {}, None, {}
    if not args.skip_stroom:
        stroom_out = os.path.join(out, f"stroom-{station}")
        command = [args.stroom, "backtest", "--store", args.store, "--target", target, "--horizon", str(H),
                   "--folds", str(F), "--step", str(S), "--models", STROOM_MODELS, "--out", stroom_out]
        seconds, rss, _ = measured(command, os.path.join(out, f"stroom-{station}"))
        stroom_run = (seconds, rss)
        models = stroom_forecasts(os.path.join(stroom_out, "forecasts.parquet"), target, station, H)
        for model, frame in models.items():
            stroom_cutoffs[model] = [pd.Timestamp(c) for c in sorted(frame["cutoff"].unique())]
            if stroom_cutoffs[model] != cutoffs:
                raise Failure(f"{target}: stroom's {model} cutoffs {dates(stroom_cutoffs[model])} differ from "
                              f"last - H - (F-1-i)*S = {dates(cutoffs)}")
            counts = frame.groupby("cutoff").size()
            if (counts != H).any():
                raise Failure(f"{target}: stroom's {model} has folds without exactly {H} days")
            store_actual = series.reindex(frame["date"]).to_numpy()
            if not np.allclose(frame["actual"].to_numpy(dtype=float), store_actual, rtol=0, atol=1e-9, equal_nan=False):
                raise Failure(f"{target}: stroom's actuals for {model} differ from the store's series")
            stroom_scores[model] = score(frame.drop(columns="actual"), series, scales)
        result["stroom"] = {"wall_s": seconds, "peak_rss_mib": rss, "models": stroom_scores}
        metrics_path = os.path.join(stroom_out, "metrics.csv")
        result["stroom"]["metrics_csv_check"] = cross_check(stroom_metrics_csv(metrics_path, target, station), stroom_scores)

    # statsforecast, in a child process of this script
    sf_dir = os.path.join(out, f"statsforecast-{station}")
    os.makedirs(sf_dir, exist_ok=True)
    series_path = os.path.join(sf_dir, "series.parquet")
    pd.DataFrame({"unique_id": target, "ds": series.index, "y": series.to_numpy()}).to_parquet(series_path, index=False)
    cv_path = os.path.join(sf_dir, "cross_validation.parquet")
    command = [sys.executable, os.path.abspath(__file__), "--statsforecast-job", series_path, cv_path,
               "--horizon", str(H), "--folds", str(F), "--step", str(S)]
    _, sf_rss, stdout = measured(command, os.path.join(sf_dir, "job"))
    sf_times = json.loads(stdout.strip().splitlines()[-1])
    cv = pd.read_parquet(cv_path)
    cv["cutoff"] = pd.to_datetime(cv["cutoff"]).dt.normalize()
    cv["ds"] = pd.to_datetime(cv["ds"]).dt.normalize()
    sf_cutoffs = [pd.Timestamp(c) for c in sorted(cv["cutoff"].unique())]
    for model, model_cutoffs in stroom_cutoffs.items():
        if set(model_cutoffs) != set(sf_cutoffs):
            raise Failure(f"{target}: stroom's {model} cutoffs {dates(model_cutoffs)} differ from "
                          f"statsforecast's {dates(sf_cutoffs)}")
    if sf_cutoffs != cutoffs:
        raise Failure(f"{target}: statsforecast's cutoffs {dates(sf_cutoffs)} differ from "
                      f"last - H - (F-1-i)*S = {dates(cutoffs)}")
    sf_scores = {}
    for model in SF_MODELS:
        frame = pd.DataFrame({"cutoff": cv["cutoff"], "date": cv["ds"], "point": cv[model]})
        for level in LEVELS:
            frame[f"lo{level}"] = cv[f"{model}-lo-{level}"]
            frame[f"hi{level}"] = cv[f"{model}-hi-{level}"]
        sf_scores[model] = score(frame, series, scales)
    sf_best = min(SF_MODELS, key=lambda m: (math.isnan(sf_scores[m]["mase"]), sf_scores[m]["mase"]))
    result["statsforecast"] = {"version": sf_times["version"], "cold_s": sf_times["cold_s"], "warm_s": sf_times["warm_s"],
                               "import_s": sf_times["import_s"], "peak_rss_mib": sf_rss, "models": sf_scores,
                               "best_model": sf_best}

    reference = score(reference_forecasts(series, cutoffs, H), series, scales)
    result["reference_seasonal_naive"] = reference

    rows = [("stroom", model, s) for model, s in stroom_scores.items()]
    rows += [("statsforecast", model, s) for model, s in sf_scores.items()]
    rows.append(("reference", "seasonal naive (y of t-7k)", reference))
    runs = []
    if stroom_run:
        runs.append(("stroom", "backtest (whole process)", stroom_run[0], stroom_run[1]))
    runs.append(("statsforecast", "cold (1st cross_validation)", sf_times["cold_s"], sf_rss))
    runs.append(("statsforecast", "warm (2nd cross_validation)", sf_times["warm_s"], sf_rss))
    print_table(target, rows, runs)
    print(f"statsforecast {sf_times['version']}: imports {sf_times['import_s']:.2f} s; the peak RSS is the child "
          f"process's over both calls. Reference seasonal-naive MASE: {reference['mase']:.4f}")

    sf_best_mase = sf_scores[sf_best]["mase"]
    summary = {"statsforecast_best_model": sf_best, "statsforecast_best_mase": sf_best_mase}
    if stroom_run:
        auto = stroom_scores.get("auto")
        if auto is None:
            raise Failure(f"{target}: stroom's forecasts have no `auto` model (models: {sorted(stroom_scores)})")
        mase_ratio = auto["mase"] / sf_best_mase
        warm_ratio = sf_times["warm_s"] / stroom_run[0]
        cold_ratio = sf_times["cold_s"] / stroom_run[0]
        accuracy_met = bool(auto["mase"] <= sf_best_mase)
        speed_met = bool(warm_ratio >= SPEED_TARGET)
        summary.update({"stroom_auto_mase": auto["mase"], "mase_ratio": mase_ratio, "speed_ratio_warm": warm_ratio,
                        "speed_ratio_cold": cold_ratio, "accuracy_target_met": accuracy_met,
                        "speed_target_met": speed_met})
        print(f"summary {target}: MASE stroom auto / statsforecast best ({sf_best}) = {auto['mase']:.4f} / "
              f"{sf_best_mase:.4f} = {mase_ratio:.3f} (target <= 1: {'met' if accuracy_met else 'NOT met'}); "
              f"wall time statsforecast / stroom = {warm_ratio:.1f}x warm, {cold_ratio:.1f}x cold "
              f"(target >= {SPEED_TARGET:g}x warm: {'met' if speed_met else 'NOT met'})")
    else:
        print(f"summary {target}: stroom skipped; statsforecast best is {sf_best} with MASE {sf_best_mase:.4f}")
    result["summary"] = summary
    return result


def main():
    parser = argparse.ArgumentParser(description="stroom backtest vs statsforecast cross-validation")
    parser.add_argument("--stroom", default=default_stroom(), help="the stroom binary (default: %(default)s)")
    parser.add_argument("--store", help="a stroom store (folder of Delta tables)")
    parser.add_argument("--target", action="append", default=[], help="station:ID, repeatable")
    parser.add_argument("--horizon", type=int, default=14, help="days forecast from each cutoff (default: 14)")
    parser.add_argument("--folds", type=int, default=20, help="backtest folds (default: 20)")
    parser.add_argument("--step", type=int, default=7, help="days between cutoffs (default: 7)")
    parser.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--skip-stroom", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--statsforecast-job", nargs=2, metavar=("SERIES", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.statsforecast_job:
        statsforecast_job(*args.statsforecast_job, args.horizon, args.folds, args.step)
        return 0
    if not args.store or not args.target:
        parser.error("--store and at least one --target are needed")
    if not args.skip_stroom and not os.path.exists(args.stroom):
        print(f"{args.stroom} is missing: cargo build --release -p stroom", file=sys.stderr)
        return 2
    out = args.out or tempfile.mkdtemp(prefix="stroom-forecast-bench-")
    os.makedirs(out, exist_ok=True)
    print(f"outputs in {out}; horizon {args.horizon}, folds {args.folds}, step {args.step}")

    try:
        results = [bench_target(args, target, out) for target in args.target]
    except Failure as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    if not args.skip_stroom:
        met = all(r["summary"]["accuracy_target_met"] and r["summary"]["speed_target_met"] for r in results)
        print(f"\nall targets met: {'yes' if met else 'no'}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"results": finite(results)}, handle, indent=2, default=str)
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # deltalake's runtime threads can abort a normal interpreter exit
