"""Backtests from Python: the tables of a run, checked against the simulated
arrivals and the baselines' definitions; progress; recording; bad targets;
and the same forecasts as the command line."""

from __future__ import annotations

import datetime
import math
import os
import re
import statistics
import subprocess
import sys
import uuid

import pyarrow
import pyarrow.parquet
import pytest

import stroom

MODELS = ["seasonal_naive", "naive", "moving_average"]
FOLDS = 3
HORIZON = 14
FLOATS = ["mean", "q10", "q50", "q90", "lo80", "hi80", "lo95", "hi95"]
FORECAST_COLUMNS = ["target", "model", "cutoff", "date", "horizon", "actual", *FLOATS, "chosen"]
METRIC_COLUMNS = [
    "model",
    "horizon",
    "n",
    "mae",
    "mase",
    "smape",
    "wape",
    "rmse",
    "rmsse",
    "coverage80",
    "coverage95",
    "interval_score80",
    "interval_score95",
    "pinball",
]


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)


@pytest.fixture(scope="module")
def progress_calls():
    return []


@pytest.fixture(scope="module")
def run(store, progress_calls):
    """Three folds of the baselines at Dover, not recorded, with every
    progress call kept."""
    before = store.versions().get("backtests")
    result = stroom.backtest(
        store,
        "station:dover",
        folds=FOLDS,
        models=MODELS,
        record=False,
        progress=lambda done, total: progress_calls.append((done, total)),
    )
    assert store.versions().get("backtests") == before, "record=False changed the backtests table"
    return result


def test_run_id_is_a_uuid(run):
    assert str(uuid.UUID(run.run_id)) == run.run_id


def test_forecasts_have_the_columns_of_the_command_line(run):
    forecasts = run.forecasts
    assert isinstance(forecasts, pyarrow.Table)
    assert forecasts.column_names == FORECAST_COLUMNS
    schema = forecasts.schema
    assert schema.field("target").type == pyarrow.string()
    assert schema.field("cutoff").type == pyarrow.date32()
    assert schema.field("date").type == pyarrow.date32()
    assert schema.field("horizon").type == pyarrow.int32()
    for name in ["actual", *FLOATS]:
        assert schema.field(name).type == pyarrow.float64(), name
    assert forecasts.num_rows == len(MODELS) * FOLDS * HORIZON
    rows = forecasts.to_pylist()
    assert {r["target"] for r in rows} == {"station:dover"}
    assert {r["model"] for r in rows} == set(MODELS)
    assert all(r["chosen"] is None for r in rows), "only auto chooses a model"


def test_folds_follow_the_cross_validation_convention(run, last_day):
    cutoffs = sorted(set(run.forecasts.column("cutoff").to_pylist()))
    expected = [last_day - datetime.timedelta(days=HORIZON + (FOLDS - 1 - i) * 7) for i in range(FOLDS)]
    assert cutoffs == expected
    assert run.run["cutoffs"] == [c.isoformat() for c in expected]
    for r in run.forecasts.to_pylist():
        assert (r["date"] - r["cutoff"]).days == r["horizon"]
        assert 1 <= r["horizon"] <= HORIZON
        assert r["lo95"] <= r["q10"] <= r["q50"] <= r["q90"] <= r["hi95"]
        assert r["lo80"] == r["q10"] and r["hi80"] == r["q90"]
        assert r["lo95"] >= 0


def test_baselines_forecast_what_their_definitions_say(run, dover_arrivals):
    day = datetime.timedelta(days=1)
    for r in run.forecasts.to_pylist():
        cutoff, h = r["cutoff"], r["horizon"]
        assert r["actual"] == dover_arrivals[r["date"]]
        if r["model"] == "naive":
            expected = dover_arrivals[cutoff]
        elif r["model"] == "seasonal_naive":
            expected = dover_arrivals[cutoff - 7 * day + ((h - 1) % 7 + 1) * day]
        else:
            expected = sum(dover_arrivals[cutoff - i * day] for i in range(7)) / 7
        assert close(r["mean"], expected) and close(r["q50"], expected), r


def test_metrics_per_model_and_horizon(run):
    metrics = run.metrics
    assert metrics.column_names == METRIC_COLUMNS
    assert metrics.schema.field("model").type == pyarrow.string()
    assert metrics.schema.field("horizon").type == pyarrow.int32()
    for name in METRIC_COLUMNS[2:]:
        assert metrics.schema.field(name).type == pyarrow.float64(), name
    rows = metrics.to_pylist()
    assert len(rows) == len(MODELS) * (1 + HORIZON)
    forecasts = run.forecasts.to_pylist()
    for model in MODELS:
        mine = [r for r in rows if r["model"] == model]
        overall = [r for r in mine if r["horizon"] is None]
        assert len(overall) == 1, model
        assert sorted(r["horizon"] for r in mine if r["horizon"] is not None) == list(range(1, HORIZON + 1))
        scored = [f for f in forecasts if f["model"] == model]
        assert overall[0]["n"] == FOLDS * HORIZON
        # Every fold has HORIZON days, so the mean of the fold MAEs is the MAE of all rows.
        assert close(overall[0]["mae"], statistics.fmean(abs(f["actual"] - f["q50"]) for f in scored))
        for r in mine:
            if r["horizon"] is not None:
                at = [f for f in scored if f["horizon"] == r["horizon"]]
                assert r["n"] == FOLDS
                assert close(r["mae"], statistics.fmean(abs(f["actual"] - f["q50"]) for f in at)), r
    # A metric that is not finite (WAPE on days without arrivals, say) is null, never NaN.
    for r in rows:
        assert all(r[name] is None or math.isfinite(r[name]) for name in METRIC_COLUMNS[3:]), r


def test_series_is_the_target_and_its_upstream_signals(run, dover_arrivals):
    series = run.series
    assert series.column_names[:2] == ["date", "target"]
    signals = series.column_names[2:]
    assert signals, "the Channel route's segments lead to Dover"
    pattern = re.compile(r"^channel/[a-z-]+ \((8|104) weeks\)$")
    assert all(pattern.match(name) for name in signals), signals
    assert {name.split(" ")[0] for name in signals} == {
        "channel/brussels-dunkirk",
        "channel/dunkirk-calais",
        "channel/calais-dover",
    }
    for name in signals:
        assert series.schema.field(name).type == pyarrow.float64(), name
    rows = series.to_pylist()
    assert len(rows) == len(dover_arrivals)
    assert all(r["target"] == dover_arrivals[r["date"]] for r in rows)


def test_progress_counts_folds_up_to_the_total(progress_calls):
    assert progress_calls, "the callback was never called"
    assert {total for _, total in progress_calls} == {FOLDS}
    done = [d for d, _ in progress_calls]
    assert done == sorted(set(done)), done
    assert done[-1] == FOLDS


def test_progress_bar_and_no_progress(store, capsys):
    pytest.importorskip("tqdm")
    arguments = dict(folds=1, models=["naive"], record=False)
    with_bar = stroom.backtest(store, "station:dover", progress=True, **arguments)
    bar = capsys.readouterr().err
    assert "fold" in bar, bar
    quiet = stroom.backtest(store, "station:dover", progress=False, **arguments)
    assert capsys.readouterr().err == ""
    assert with_bar.forecasts.equals(quiet.forecasts)
    with pytest.raises(TypeError, match="progress"):
        stroom.backtest(store, "station:dover", progress="yes", **arguments)


def test_progress_true_without_tqdm_shows_nothing(store, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    result = stroom.backtest(store, "station:dover", folds=1, models=["naive"], record=False, progress=True)
    assert result.forecasts.num_rows == HORIZON
    assert capsys.readouterr().err == ""


def test_write_gives_the_files_of_the_command_line(run, tmp_path):
    run.write(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forecasts.parquet", "metrics.csv", "run.json", "series.csv"]
    assert pyarrow.parquet.read_table(tmp_path / "forecasts.parquet").equals(run.forecasts)
    metrics = (tmp_path / "metrics.csv").read_text().splitlines()
    assert metrics[0].split(",") == METRIC_COLUMNS
    assert sum(1 for line in metrics if ",all," in line) == len(MODELS)


def test_a_recorded_run_lands_in_the_backtests_table(store):
    before = store.versions().get("backtests")
    result = stroom.backtest(store, "station:dover", folds=1, models=["naive"])
    after = store.versions()["backtests"]
    assert before is None or after > before
    rows = store.sql(f"SELECT count(*) AS n FROM backtests WHERE run_id = '{result.run_id}'")
    assert rows.column("n").to_pylist() == [HORIZON]


@pytest.mark.parametrize(
    "target, errors, named",
    [
        ("station:nowhere", stroom.StoreError, "nowhere"),
        ("dover", stroom.RouteError, "dover"),
        ("segment:channel/nowhere-dover", stroom.RouteError, "nowhere-dover"),
        ("segment:atlantis/a-b", stroom.RouteError, "atlantis"),
    ],
)
def test_a_bad_target_is_refused_naming_it(store, target, errors, named):
    before = store.versions()
    with pytest.raises(errors) as caught:
        stroom.backtest(store, target, folds=1, models=["naive"])
    assert named in str(caught.value)
    assert store.versions() == before


@pytest.mark.parametrize(
    "arguments, named",
    [
        (dict(models=["prophet"]), "prophet"),
        (dict(horizon=29), "horizon"),
        (dict(folds=2000), "not enough data"),
    ],
)
def test_bad_model_options_raise_model_error(store, arguments, named):
    before = store.versions()
    with pytest.raises(stroom.ModelError, match=named):
        stroom.backtest(store, "station:dover", **{"folds": 1, "models": ["naive"], **arguments})
    assert store.versions() == before


@pytest.mark.skipif(not os.environ.get("STROOM_BIN"), reason="STROOM_BIN does not name the stroom binary")
def test_the_same_forecasts_as_the_command_line(small, run, tmp_path):
    out = tmp_path / "bt"
    command = [
        os.environ["STROOM_BIN"],
        "backtest",
        "--store",
        str(small.path),
        "--target",
        "station:dover",
        "--folds",
        str(FOLDS),
        "--models",
        ",".join(MODELS),
        "--out",
        str(out),
        "--no-record",
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    cli = pyarrow.parquet.read_table(out / "forecasts.parquet")
    assert cli.column_names == run.forecasts.column_names
    order = [("model", "ascending"), ("cutoff", "ascending"), ("date", "ascending")]
    ours = run.forecasts.sort_by(order).to_pylist()
    theirs = cli.sort_by(order).to_pylist()
    assert len(ours) == len(theirs) == len(MODELS) * FOLDS * HORIZON
    for mine, other in zip(ours, theirs):
        for name in ("target", "model", "cutoff", "date", "horizon", "chosen"):
            assert mine[name] == other[name], (name, mine, other)
        for name in ["actual", *FLOATS]:
            a, b = mine[name], other[name]
            assert (a is None and b is None) or abs(a - b) <= 1e-9, (name, mine, other)
