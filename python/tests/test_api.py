"""The REST API from Python: a Server on loopback, keys from create_key, and
the pure-Python Client, whose answers are checked against the store."""

from __future__ import annotations

import datetime
import json
import math
import pickle
import uuid

import pyarrow
import pytest

import stroom

UTC = datetime.timezone.utc
FLOATS = ["mean", "q10", "q50", "q90", "lo80", "hi80", "lo95", "hi95"]


@pytest.fixture(scope="module")
def api(small, channel_forecast):
    """A server over the small store (after one forecast run of the Channel
    route) and a token of each role; the viewer sees only the Channel route."""
    keys = small.root / "keys.toml"
    tokens = {role: stroom.create_key(keys, role) for role in ("admin", "analyst")}
    tokens["viewer"] = stroom.create_key(keys, "viewer", routes=["channel"])
    with stroom.Server(small.path, keys, audit=small.root / "audit.jsonl") as server:
        yield server, tokens


def client(api, role: str) -> stroom.Client:
    server, tokens = api
    return stroom.Client(server.url, tokens[role])


def metadata(table: pyarrow.Table) -> dict:
    return json.loads(table.schema.metadata[b"stroom"])


def test_the_server_listens_on_loopback(api):
    server, _ = api
    assert server.url.startswith("http://127.0.0.1:")
    assert client(api, "viewer").health() is True


def test_routes_are_those_the_key_may_see(api):
    every = client(api, "admin").routes()
    assert every.column_names == ["id", "name", "destination", "stations", "segments"]
    assert every.schema.field("segments").type == pyarrow.int64()
    assert sorted(every.column("id").to_pylist()) == [
        "central-mediterranean",
        "channel",
        "eastern-land-border",
        "western-balkans",
    ]
    viewer = client(api, "viewer").routes().to_pylist()
    assert viewer == [{"id": "channel", "name": "Channel", "destination": "dover", "stations": 4, "segments": 3}]
    detail = client(api, "viewer").route("channel")
    assert [s["id"] for s in detail["stations"]] == ["brussels", "dunkirk", "calais", "dover"]
    assert detail["geometry"]["type"] == "FeatureCollection"


def test_route_forecast_is_the_recorded_run(api, channel_forecast):
    viewer = client(api, "viewer")
    table = viewer.forecast("channel")
    assert table.column_names == [
        "run_id",
        "target",
        "station",
        "model",
        "chosen",
        "cutoff",
        "date",
        "horizon",
        *FLOATS,
    ]
    assert table.schema.field("date").type == pyarrow.date32()
    assert table.schema.field("horizon").type == pyarrow.int32()
    assert metadata(table)["run_id"] == channel_forecast.run_id
    assert set(table.column("run_id").to_pylist()) == {channel_forecast.run_id}
    served = table.to_pylist()
    recorded = channel_forecast.forecasts.to_pylist()
    assert len(served) == len(recorded) == 14
    for mine, theirs in zip(served, recorded):
        for name in ("target", "model", "chosen", "cutoff", "date", "horizon"):
            assert mine[name] == theirs[name], name
        for name in FLOATS:
            assert math.isclose(mine[name], theirs[name], rel_tol=1e-12, abs_tol=1e-9), name
    assert viewer.forecast("channel", run=channel_forecast.run_id).equals(table)
    assert viewer.forecast("channel", horizon=3).column("horizon").to_pylist() == [1, 2, 3]
    station = viewer.station_forecast("dover")
    assert station.column_names == table.column_names and station.to_pylist() == served


def test_series_through_the_api_match_the_store(api, store):
    analyst = client(api, "analyst")
    for level in ("segment", "station"):
        served = analyst.series("channel", "2023-06-01", datetime.date(2023, 6, 8), level=level)
        direct = store.series("channel", "2023-06-01", "2023-06-08", level=level)
        assert served.column_names == direct.column_names == ["name", "time", "devices", "cell_hours"]
        key = lambda row: (row["name"], row["time"])  # noqa: E731
        assert sorted(served.to_pylist(), key=key) == sorted(direct.to_pylist(), key=key)
        assert metadata(served)["k"] == 15


def test_cell_series_through_the_api_match_the_store(api, store):
    cell = store.sql(
        "SELECT h3_cell_to_string(cell) AS cell, count(*) AS hours FROM density "
        "WHERE day = DATE '2023-06-01' GROUP BY cell ORDER BY hours DESC, cell LIMIT 1"
    ).column("cell")[0].as_py()
    analyst = client(api, "analyst")
    daily = analyst.cell_series(cell, "2023-06-01", "2023-06-08")
    assert daily.schema.field("time").type == pyarrow.date32()
    assert daily.to_pylist() == store.cell_series(cell, "2023-06-01", "2023-06-08").to_pylist()
    assert analyst.cell_series(int(cell, 16), "2023-06-01", "2023-06-08").equals(daily)

    hourly = analyst.cell_series(cell, "2023-06-01", "2023-06-02", resolution="hour")
    assert hourly.schema.field("time").type == pyarrow.timestamp("us", tz="UTC")
    direct = store.cell_series(cell, "2023-06-01", "2023-06-02", hourly=True).to_pylist()

    def utc(moment: datetime.datetime) -> datetime.datetime:
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)

    assert [(r["time"], r["devices"]) for r in hourly.to_pylist()] == [(utc(r["time"]), r["devices"]) for r in direct]


def test_maps_come_as_geojson_svg_and_png(api, last_day):
    viewer = client(api, "viewer")
    geojson = viewer.map("channel")
    assert isinstance(geojson, dict) and geojson["type"] == "FeatureCollection"
    assert geojson["forecast_date"] == (last_day + datetime.timedelta(days=1)).isoformat()
    assert any("hex_id" in feature["properties"] for feature in geojson["features"])
    svg = viewer.map("channel", format="svg", date=last_day + datetime.timedelta(days=2))
    assert isinstance(svg, str) and svg.startswith("<svg")
    png = viewer.map("channel", format="png")
    assert isinstance(png, bytes) and png.startswith(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ValueError, match="jpg"):
        viewer.map("channel", format="jpg")


def test_the_briefing_page_names_the_route(api):
    page = client(api, "viewer").briefing("channel")
    assert page.lstrip().lower().startswith("<!doctype html")
    assert "Channel" in page and "Dover" in page


def test_a_wrong_token_is_401(api):
    server, _ = api
    with pytest.raises(stroom.ApiError) as caught:
        stroom.Client(server.url, "not-a-token").routes()
    error = caught.value
    assert isinstance(error, stroom.StroomError)
    assert error.status == 401
    assert error.problem["status"] == 401 and error.problem["detail"] in str(error)
    assert "bearer token" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.status, copy.problem, str(copy)) == (error.status, error.problem, str(error))


def test_an_unknown_route_is_404_and_another_route_403(api):
    viewer = client(api, "viewer")
    with pytest.raises(stroom.ApiError) as unknown:
        viewer.forecast("nowhere")
    assert unknown.value.status == 404 and "nowhere" in str(unknown.value)
    with pytest.raises(stroom.ApiError) as hidden:
        viewer.forecast("western-balkans")
    assert hidden.value.status == 403 and "western-balkans" in str(hidden.value)
    with pytest.raises(stroom.ApiError) as role:
        viewer.series("channel", "2023-06-01", "2023-06-08")
    assert role.value.status == 403


def test_a_bad_parameter_is_400_naming_it(api):
    analyst = client(api, "analyst")
    with pytest.raises(stroom.ApiError) as caught:
        analyst.series("channel", "2023-06-01", "2023-06-31")
    assert caught.value.status == 400 and "2023-06-31" in str(caught.value)
    with pytest.raises(stroom.ApiError) as target:
        analyst.backtest("dover")
    assert target.value.status == 400 and "not a target" in str(target.value)


def test_a_backtest_job_gives_the_metrics_of_the_native_backtest(api, store):
    job = client(api, "analyst").backtest("station:dover", horizon=7, folds=2, models=["naive"], poll=0.1)
    assert job["status"] == "succeeded"
    assert str(uuid.UUID(job["run_id"])) == job["run_id"]
    assert job["request"]["target"] == "station:dover"
    [served] = job["metrics"]
    native = stroom.backtest(store, "station:dover", horizon=7, folds=2, models=["naive"], record=False)
    [overall] = [row for row in native.metrics.to_pylist() if row["horizon"] is None]
    assert served["model"] == overall["model"] == "naive"
    assert served["n"] == overall["n"] == 14
    for name in ("mae", "mase", "rmse", "coverage80", "coverage95"):
        a, b = served[name], overall[name]
        assert (a is None and b is None) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9), name
    recorded = store.sql(f"SELECT count(*) AS n FROM backtests WHERE run_id = '{job['run_id']}'")
    assert recorded.column("n").to_pylist() == [14]


def test_a_failed_job_raises_and_a_queued_one_is_returned_at_once(api):
    analyst = client(api, "analyst")
    # Sixty folds of 28 days, 90 days apart, reach back further than the 400 simulated days.
    too_long = dict(horizon=28, folds=60, step=90, models=["naive"])
    queued = analyst.backtest("station:dover", wait=False, **too_long)
    assert queued["status"] in ("queued", "running", "failed")
    assert queued["request"]["folds"] == 60 and queued["run_id"] is None
    with pytest.raises(stroom.ApiError) as caught:
        analyst.backtest("station:dover", poll=0.1, **too_long)
    assert caught.value.status == 500
    assert caught.value.problem["job"]["status"] == "failed"
    assert caught.value.problem["detail"] in str(caught.value)


def test_a_refresh_is_served_once_recorded(api):
    with pytest.raises(stroom.ApiError) as caught:
        client(api, "analyst").refresh()
    assert caught.value.status == 403
    admin = client(api, "admin")
    job = admin.refresh(poll=0.2)
    assert job["status"] == "succeeded"
    assert sorted(job["targets"]) == ["station:dover", "station:ter-apel", "station:ventimiglia"]
    assert metadata(admin.forecast("channel"))["run_id"] == job["run_id"]


def test_explained_forecasts_split_the_mean_into_parts(api):
    viewer = client(api, "viewer")
    table = viewer.forecast("channel", explain=True)
    assert table.column_names[-3:] == ["level", "signals", "rest"]
    for row in table.to_pylist():
        total = row["level"] + sum(s["part"] for s in row["signals"]) + row["rest"]
        assert math.isclose(total, row["mean"], rel_tol=1e-9, abs_tol=1e-9), row
    assert viewer.station_forecast("dover", explain=True).column("level").null_count == 0
    assert "level" not in viewer.forecast("channel").column_names


def test_alerts_follow_a_capacity_an_admin_sets(api):
    viewer, admin = client(api, "viewer"), client(api, "admin")
    assert viewer.alerts().num_rows == 0
    # The day with the largest median, and a capacity an eighth of the way from
    # its 10% quantile to its median: P(arrivals > capacity) = 0.85 under the
    # linear interpolation between published quantiles.
    first = max(viewer.station_forecast("dover").to_pylist(), key=lambda row: row["q50"])
    capacity = first["q10"] + (first["q50"] - first["q10"]) / 8
    with pytest.raises(stroom.ApiError) as refused:
        viewer.set_capacity("dover", daily=capacity)
    assert refused.value.status == 403
    with pytest.raises(stroom.ApiError) as bad:
        admin.set_capacity("dover", daily=-1)
    assert bad.value.status == 400 and "'daily'" in str(bad.value)
    answer = admin.set_capacity("dover", daily=capacity)
    assert answer["station"] == "dover" and math.isclose(answer["daily"], capacity, rel_tol=1e-12)
    try:
        alerts = viewer.alerts()
        assert alerts.column_names[:5] == ["station", "date", "window", "capacity", "probability"]
        assert json.loads(alerts.schema.metadata[b"level"]) == 0.8
        rows = {(row["date"], row["window"]): row for row in alerts.to_pylist()}
        day_one = rows[(first["date"], "day")]
        assert math.isclose(day_one["probability"], 0.85, abs_tol=1e-9)
        assert day_one["status"] == "open" and day_one["station"] == "dover"
        assert all(p >= 0.8 for p in alerts.column("probability").to_pylist())
        assert viewer.alerts(status="all", station="dover").num_rows >= alerts.num_rows
        with pytest.raises(ValueError):
            viewer.alerts(status="maybe")
        assert "Capacity alerts" in viewer.briefing("channel")
    finally:
        admin.set_capacity("dover", daily=1e9)
    assert viewer.alerts(status="all").num_rows == 0


def test_a_stopped_server_is_not_healthy(small, api):
    _, tokens = api
    server = stroom.Server(small.path, small.root / "keys.toml")
    viewer = stroom.Client(server.url, tokens["viewer"], timeout=5)
    assert viewer.health()
    server.stop()
    assert not viewer.health()


def test_nowcast_from_the_store_is_the_api_s(api, store, last_day):
    analyst = client(api, "analyst").nowcast("channel", cells=5)
    assert analyst == store.nowcast("channel", cells=5)
    assert analyst["date"] == last_day.isoformat() and analyst["baseline_weeks"] == 8
    assert len(analyst["cells"]) == 5
    # A viewer sees the segments only.
    viewer = client(api, "viewer").nowcast("channel", date=last_day)
    assert viewer["segments"] == analyst["segments"] and viewer["cells"] == []
    with pytest.raises(stroom.ApiError) as error:
        client(api, "viewer").nowcast("channel", date="someday")
    assert error.value.status == 400


def test_nowcast_scores_each_segment_against_its_weekday(store, last_day):
    """Each segment's score recomputed from Store.series: the median of the
    same weekday over the eight weeks before, and the robust spread."""
    nowcast = store.nowcast("channel", date=last_day, cells=0)
    start = last_day - datetime.timedelta(weeks=8)
    series = store.series("channel", start, last_day + datetime.timedelta(days=1)).to_pylist()
    devices = {(row["name"], row["time"]): row["devices"] for row in series}
    assert nowcast["segments"], nowcast
    for entry in nowcast["segments"]:
        history = sorted(devices.get((entry["name"], start + datetime.timedelta(weeks=w)), 0) for w in range(8))
        median = (history[3] + history[4]) / 2
        deviations = sorted(abs(v - median) for v in history)
        spread = max(1.4826 * (deviations[3] + deviations[4]) / 2, math.sqrt(median + 1))
        assert entry["devices"] == devices[(entry["name"], last_day)]
        assert entry["baseline"] == pytest.approx(median)
        assert entry["spread"] == pytest.approx(spread)
        assert entry["z"] == pytest.approx((entry["devices"] - median) / spread)
    zs = [abs(e["z"]) for e in nowcast["segments"]]
    assert zs == sorted(zs, reverse=True)
    with pytest.raises(stroom.RouteError):
        store.nowcast("atlantis")


def test_a_scenario_moves_arrivals_and_leaves_the_published_forecasts(api):
    analyst, viewer = client(api, "analyst"), client(api, "viewer")
    published = viewer.forecast("channel")
    start = max(published.column("cutoff").to_pylist()) + datetime.timedelta(days=1)
    with pytest.raises(stroom.ApiError) as refused:
        viewer.scenario("western-balkans", "horgos-budapest", start, divert_to="channel", share=0.3)
    assert refused.value.status == 403
    with pytest.raises(stroom.ApiError) as bad:
        analyst.scenario("western-balkans", "horgos-paris", start)
    assert bad.value.status == 400 and "horgos-paris" in str(bad.value)
    table = analyst.scenario(
        "western-balkans", "horgos-budapest", start, divert_to="channel", share=0.3, travel_days=5, divert_travel_days=4
    )
    assert set(table.column("variant").to_pylist()) == {"baseline", "scenario"}
    rows = table.to_pylist()
    by = {(r["target"], r["variant"], r["date"]): r["mean"] for r in rows}
    closed = [(d, by[("station:ter-apel", "baseline", d)], m) for (t, v, d), m in by.items()
              if t == "station:ter-apel" and v == "scenario"]
    # Horgoš is five days (given) from Ter Apel: from then on the closure removes arrivals.
    assert all(s <= b + 1e-9 for _, b, s in closed)
    assert any(s < b for d, b, s in closed if d >= start + datetime.timedelta(days=5))
    gained = [s - by[("station:dover", "baseline", d)] for (t, v, d), s in by.items()
              if t == "station:dover" and v == "scenario"]
    assert min(gained) >= -1e-9 and max(gained) > 0
    document = json.loads(table.schema.metadata[b"stroom"])
    assert document["closure"]["travel_days"] == 5 and document["assumptions"]["close_lag_source"] == "given"
    assert analyst.scenarios()[0]["run_id"] == document["run_id"]
    assert viewer.scenarios() == [], "the viewer sees only the Channel route, not the closed one"
    assert viewer.forecast("channel").equals(published)


def test_uploads_land_as_the_same_rows_as_a_local_ingest(small, tmp_path):
    """A fresh store fed over HTTP by an ingest key, beside one fed by
    ingest_density, from the same two simulated days."""
    days = sorted((small.sim / "density").glob("density-2023-02-0[12].parquet"))
    assert len(days) == 2
    seed = tmp_path / "seed.csv"
    seed.write_text("date,station,count\n2023-01-31,dover,12\n")
    served, local = (stroom.Store.create(tmp_path / name) for name in ("served", "local"))
    for each in (served, local):
        stroom.ingest_arrivals(each, seed)
    stroom.ingest_density(local, days)
    keys = tmp_path / "keys.toml"
    ingest, viewer = stroom.create_key(keys, "ingest"), stroom.create_key(keys, "viewer")
    with stroom.Server(tmp_path / "served", keys, audit=tmp_path / "audit.jsonl") as server:
        uploads = stroom.Client(server.url, ingest)
        first = uploads.upload("density", days[0])
        assert (first["status"], first["file"]) == ("ingested", days[0].name)
        assert first["rows_read"] >= first["cell_hours"] == first["rows_written"] + first["suppressed"] > 0
        second = uploads.upload("density", days[1].read_bytes(), name=days[1].name)
        assert second["version"] == first["version"] + 1
        assert uploads.upload("density", days[0])["status"] == "already_ingested"
        with pytest.raises(stroom.ApiError) as caught:
            uploads.upload("arrivals", b"date,station,count\n2023-02-01,dover,many\n", name="late.csv")
        assert caught.value.status == 422
        assert "late.csv, line 2" in str(caught.value) and "'many'" in str(caught.value)
        with pytest.raises(stroom.ApiError) as caught:
            stroom.Client(server.url, viewer).upload("density", days[0])
        assert caught.value.status == 403
        with pytest.raises(ValueError):
            uploads.upload("density", days[0], station="dover")
    query = "SELECT cell, ts, count FROM density ORDER BY cell, ts"
    assert served.sql(query).equals(local.sql(query))


def test_a_correction_replaces_its_hours_alike_locally_and_over_http(small, tmp_path):
    """A corrected delivery of one hour, by ingest_density(replace=True) and
    by an upload with replace=True: the same rows, the same counts replaced
    and held (a change below k is held)."""
    day = sorted((small.sim / "density").glob("density-2023-02-01.parquet"))
    assert len(day) == 1
    served, local = (stroom.Store.create(tmp_path / name) for name in ("served", "local"))
    seed = tmp_path / "seed.csv"
    seed.write_text("date,station,count\n2023-01-31,dover,12\n")
    stroom.ingest_arrivals(served, seed)
    stroom.ingest_density(local, day)
    keys = tmp_path / "keys.toml"
    ingest = stroom.create_key(keys, "ingest")
    first = local.sql("SELECT cell, ts, count FROM density WHERE ts = (SELECT MIN(ts) FROM density) ORDER BY cell")
    rows = first.to_pylist()
    assert len(rows) >= 4
    lines = ["ts,cell,count"]
    for i, row in enumerate(rows):
        lines.append(f"{row['ts'].isoformat()},{row['cell']},{row['count'] + (3 if i % 2 else 20)}")
    fix = tmp_path / "fix.csv"
    fix.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError):
        stroom.ingest_density(local, fix, replace=True, add_to_stored=True)
    report = stroom.ingest_density(local, fix, replace=True)
    assert (report["held"], report["replaced"]) == (len(rows) // 2, len(rows) - len(rows) // 2)
    with stroom.Server(tmp_path / "served", keys, audit=tmp_path / "audit.jsonl") as server:
        uploads = stroom.Client(server.url, ingest)
        uploads.upload("density", day[0])
        with pytest.raises(ValueError):
            uploads.upload("density", fix, replace=True, add_to_stored=True)
        with pytest.raises(stroom.ApiError) as caught:
            uploads.upload("density", fix)
        assert caught.value.status == 422 and "stored already" in str(caught.value)
        answer = uploads.upload("density", fix, replace=True)
        assert (answer["replaced_cell_hours"], answer["held_cell_hours"]) == (report["replaced"], report["held"])
    query = "SELECT cell, ts, count FROM density ORDER BY cell, ts"
    assert served.sql(query).equals(local.sql(query))
