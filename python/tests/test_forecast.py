"""Forecasts from Python: one route's destination, recorded with its run id."""

from __future__ import annotations

import datetime
import uuid

import pyarrow

import stroom

COLUMNS = [
    "target",
    "model",
    "chosen",
    "cutoff",
    "date",
    "horizon",
    "mean",
    "q10",
    "q50",
    "q90",
    "lo80",
    "hi80",
    "lo95",
    "hi95",
]


def test_one_route_forecasts_its_destination(channel_forecast, last_day):
    assert isinstance(channel_forecast, stroom.ForecastResult)
    assert str(uuid.UUID(channel_forecast.run_id)) == channel_forecast.run_id
    forecasts = channel_forecast.forecasts
    # The run's id and creation time may lead, as in the store's forecasts table.
    assert [c for c in forecasts.column_names if c not in ("run_id", "created_at")] == COLUMNS
    if "run_id" in forecasts.column_names:
        assert set(forecasts.column("run_id").to_pylist()) == {channel_forecast.run_id}
    assert forecasts.schema.field("cutoff").type == pyarrow.date32()
    assert forecasts.schema.field("date").type == pyarrow.date32()
    assert forecasts.schema.field("horizon").type == pyarrow.int32()
    rows = forecasts.to_pylist()
    assert {r["target"] for r in rows} == {"station:dover"}
    assert {r["model"] for r in rows} == {"auto"}
    assert all(r["chosen"] for r in rows), "auto names the model it chose"
    assert [r["horizon"] for r in rows] == list(range(1, 15))
    for r in rows:
        assert r["cutoff"] == last_day
        assert r["date"] == last_day + datetime.timedelta(days=r["horizon"])
        assert 0 <= r["lo95"] <= r["q10"] <= r["q50"] <= r["q90"] <= r["hi95"]
        assert r["lo80"] == r["q10"] and r["hi80"] == r["q90"]
        assert r["mean"] >= 0


def test_the_run_is_recorded_with_its_vintage(store, channel_forecast):
    recorded = store.sql(f"SELECT count(*) AS n FROM forecasts WHERE run_id = '{channel_forecast.run_id}'")
    assert recorded.column("n").to_pylist() == [14]
    vintage = channel_forecast.run["vintage"]
    versions = store.versions()
    assert vintage["arrivals"] <= versions["arrivals"] and vintage["density"] <= versions["density"]


def test_a_target_and_a_model_can_be_named(store, channel_forecast):
    result = stroom.forecast(store, target=["station:ter-apel"], model="seasonal_naive", horizon=7, record=False)
    rows = result.forecasts.to_pylist()
    assert [(r["target"], r["model"], r["horizon"]) for r in rows] == [
        ("station:ter-apel", "seasonal_naive", h) for h in range(1, 8)
    ]
    assert all(r["chosen"] is None for r in rows)
    recorded = store.sql(f"SELECT count(*) AS n FROM forecasts WHERE run_id = '{result.run_id}'")
    assert recorded.column("n").to_pylist() == [0]
