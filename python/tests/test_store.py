"""The store from Python: opening, the table summary, SQL (checked against
an independent Delta reader), time travel and the density series."""

from __future__ import annotations

import datetime
import json
import pathlib

import deltalake
import pandas
import polars
import pyarrow
import pytest

import stroom

CHANNEL_SEGMENTS = {"brussels-dunkirk", "dunkirk-calais", "calais-dover"}
CHANNEL_STATIONS = {"brussels", "dunkirk", "calais", "dover"}
ROUTES_FOLDER = pathlib.Path(__file__).resolve().parents[2] / "data" / "routes"


def test_opening_a_missing_store_names_the_location(tmp_path):
    missing = tmp_path / "no-store-here"
    with pytest.raises(stroom.StoreError, match="no store") as caught:
        stroom.Store(missing)
    assert "no-store-here" in str(caught.value)
    assert not missing.exists(), "opening for reading created the folder"


def test_a_folder_without_tables_is_no_store(tmp_path):
    with pytest.raises(stroom.StoreError, match="no store"):
        stroom.Store(str(tmp_path))


def test_an_existing_store_opens_by_path_or_text(small):
    for location in (small.path, str(small.path)):
        store = stroom.Store(location)
        assert store.url.rstrip("/").endswith("store")
        assert store.versions() == small.store.versions()


def test_tables_summarise_every_table(small, store, last_day):
    tables = store.tables()
    assert isinstance(tables, pyarrow.Table)
    assert tables.column_names == ["table", "version", "rows", "first", "last"]
    assert tables.schema.field("version").type == pyarrow.int64()
    assert tables.schema.field("rows").type == pyarrow.int64()
    assert tables.schema.field("first").type == pyarrow.string()
    by_name = {row["table"]: row for row in tables.to_pylist()}
    assert {"density", "density_daily", "arrivals"} <= set(by_name)
    assert by_name["arrivals"]["rows"] == small.simulated["arrivals_rows"] == 23 * 400
    assert by_name["density"]["rows"] == small.simulated["density_rows"]
    assert by_name["arrivals"]["first"].startswith("2023-01-01")
    assert by_name["arrivals"]["last"].startswith(last_day.isoformat())
    versions = store.versions()
    for name, row in by_name.items():
        assert row["version"] == versions[name], name


def test_ingest_reports_agree_with_the_simulator(small):
    assert small.density["rows_read"] == small.simulated["density_rows"]
    # The simulator's provider already applied k = 15, so nothing more is suppressed.
    assert small.density["suppressed"] == 0
    assert small.density["rows_written"] == small.simulated["density_rows"]
    assert small.density["days"] == 400
    assert small.density["cells"] == small.simulated["grid_cells"]
    assert len(small.density["sources"]) == 400
    assert all(not source["already_ingested"] for source in small.density["sources"])
    assert small.arrivals["rows_loaded"] == small.simulated["arrivals_rows"]
    assert small.arrivals["new_rows"] == small.simulated["arrivals_rows"]
    assert small.arrivals["revised_rows"] == 0
    assert small.arrivals["already_ingested"] is False


def test_sql_returns_arrow_that_polars_and_pandas_take(small, store):
    table = store.sql("SELECT station, date, count FROM arrivals ORDER BY station, date")
    assert isinstance(table, pyarrow.Table)
    reference = deltalake.DeltaTable(str(small.path / "arrivals")).to_pyarrow_table()
    assert table.num_rows == reference.num_rows == 9200
    frame = polars.from_arrow(table)
    assert isinstance(frame, polars.DataFrame) and frame.height == 9200
    assert frame.schema["date"] == polars.Date
    pandas_frame = table.to_pandas()
    assert isinstance(pandas_frame, pandas.DataFrame) and len(pandas_frame) == 9200
    # The same rows as the Delta reader, not only as many.
    ours = sorted((r["station"], r["date"], r["count"]) for r in table.to_pylist())
    theirs = sorted((r["station"], r["date"], r["count"]) for r in reference.to_pylist())
    assert ours == theirs


def test_sql_counts_density_rows_as_an_independent_reader_does(small, store):
    counted = store.sql("SELECT count(*) AS n FROM density").column("n").to_pylist()
    reference = deltalake.DeltaTable(str(small.path / "density")).to_pyarrow_dataset().count_rows()
    assert counted == [reference] == [small.simulated["density_rows"]]


def test_sql_h3_functions(store):
    table = store.sql(
        "SELECT h3_cell_to_string(cell) AS hex, h3_get_resolution(cell) AS resolution FROM density LIMIT 5"
    )
    assert table.num_rows == 5
    assert set(table.column("resolution").to_pylist()) == {7}
    assert all(len(text) == 15 and text.startswith("87") for text in table.column("hex").to_pylist())


def test_a_sql_typo_raises_query_error_with_the_parser_message_once(store):
    with pytest.raises(stroom.QueryError) as caught:
        store.sql("SELEC station FROM arrivals")
    message = str(caught.value)
    assert message.count("Expected: an SQL statement, found: SELEC") == 1, message
    assert not isinstance(caught.value, stroom.StoreError)


def test_an_unknown_table_raises_query_error_naming_it(store):
    with pytest.raises(stroom.QueryError, match="no_such_table"):
        store.sql("SELECT * FROM no_such_table")


def test_sql_is_read_only(store):
    with pytest.raises(stroom.QueryError):
        store.sql("DROP TABLE arrivals")
    assert store.sql("SELECT count(*) AS n FROM arrivals").column("n").to_pylist() == [9200]


def test_as_of_reads_the_store_as_it_was(store):
    sql = "SELECT count(*) AS n FROM arrivals"
    # Version 0 of every table is its creation, before any row.
    assert store.sql(sql, as_of=0).column("n").to_pylist() == [0]
    assert store.sql(sql, as_of=1).column("n").to_pylist() == [9200]
    assert store.sql(sql).column("n").to_pylist() == [9200]
    tomorrow = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    assert store.sql(sql, as_of=tomorrow).column("n").to_pylist() == [9200]
    assert store.sql(sql, as_of=tomorrow.strftime("%Y-%m-%dT%H:%M:%SZ")).column("n").to_pylist() == [9200]


def test_series_per_segment_and_per_station(store):
    start, end = datetime.date(2023, 6, 1), datetime.date(2023, 6, 8)
    series = store.series("channel", start, end)
    assert series.column_names == ["name", "time", "devices", "cell_hours"]
    assert series.schema.field("name").type == pyarrow.string()
    assert series.schema.field("time").type == pyarrow.date32()
    assert series.schema.field("devices").type == pyarrow.int64()
    assert series.schema.field("cell_hours").type == pyarrow.int64()
    rows = series.to_pylist()
    assert {row["name"] for row in rows} == CHANNEL_SEGMENTS
    # `end` is exclusive: seven days per segment.
    assert {row["time"] for row in rows} == {start + datetime.timedelta(days=d) for d in range(7)}
    assert len(rows) == 3 * 7
    assert all(row["devices"] > 0 and row["cell_hours"] > 0 for row in rows)
    # Text dates give the same table.
    assert store.series("channel", "2023-06-01", "2023-06-08").equals(series)

    stations = store.series("channel", start, end, level="station")
    assert stations.column_names == ["name", "time", "devices", "cell_hours"]
    assert set(stations.column("name").to_pylist()) == CHANNEL_STATIONS


def test_hourly_series_is_timestamped(store):
    series = store.series("channel", "2023-06-01", "2023-06-02", hourly=True)
    assert pyarrow.types.is_timestamp(series.schema.field("time").type)
    hours = {row["time"].replace(tzinfo=None) for row in series.to_pylist()}
    assert hours <= {datetime.datetime(2023, 6, 1, h) for h in range(24)}
    assert len(hours) > 12
    daily = store.series("channel", "2023-06-01", "2023-06-02")
    for name in CHANNEL_SEGMENTS:
        hourly_sum = sum(r["devices"] for r in series.to_pylist() if r["name"] == name)
        day = [r["devices"] for r in daily.to_pylist() if r["name"] == name]
        assert day == [hourly_sum], name


def test_series_of_an_unknown_route_names_it(store):
    with pytest.raises(stroom.RouteError, match="atlantis"):
        store.series("atlantis", "2023-06-01", "2023-06-08")


def busiest_cell(store, day: str) -> str:
    sql = (
        "SELECT h3_cell_to_string(cell) AS cell, count(*) AS hours FROM density "
        f"WHERE day = DATE '{day}' GROUP BY cell ORDER BY hours DESC, cell LIMIT 1"
    )
    return store.sql(sql).column("cell")[0].as_py()


def test_cell_series_matches_sql_over_the_hourly_table(store):
    cell = busiest_cell(store, "2023-06-01")
    series = store.cell_series(cell, "2023-06-01", "2023-06-08")
    assert series.column_names == ["time", "devices", "cell_hours"]
    assert series.schema.field("time").type == pyarrow.date32()
    assert series.schema.field("devices").type == pyarrow.int64()
    assert series.schema.field("cell_hours").type == pyarrow.int64()
    expected = store.sql(
        "SELECT day AS time, sum(count) AS devices, count(*) AS cell_hours FROM density "
        f"WHERE cell = h3_string_to_cell('{cell}') AND day >= DATE '2023-06-01' AND day < DATE '2023-06-08' "
        "GROUP BY day ORDER BY day"
    )
    assert series.to_pylist() == expected.to_pylist()
    assert len(expected.to_pylist()) == 7
    # The integer index gives the same series.
    assert store.cell_series(int(cell, 16), "2023-06-01", "2023-06-08").to_pylist() == series.to_pylist()

    hourly = store.cell_series(cell, "2023-06-01", "2023-06-02", hourly=True)
    assert pyarrow.types.is_timestamp(hourly.schema.field("time").type)
    assert sum(hourly.column("devices").to_pylist()) == series.column("devices")[0].as_py()


def test_arrivals_of_a_station(store, dover_arrivals):
    table = store.arrivals("dover")
    assert table.column_names == ["date", "count"]
    assert table.schema.field("date").type == pyarrow.date32()
    assert table.schema.field("count").type == pyarrow.int32()
    assert {r["date"]: r["count"] for r in table.to_pylist()} == dover_arrivals
    window = store.arrivals("dover", "2023-03-01", datetime.date(2023, 3, 8)).to_pylist()
    assert [r["date"] for r in window] == [datetime.date(2023, 3, d) for d in range(1, 8)]


def test_routes_has_one_row_per_shipped_segment():
    table = stroom.routes()
    assert table.column_names == ["route", "route_name", "segment", "mode", "from", "to", "cells", "destination"]
    assert table.schema.field("cells").type == pyarrow.int64()
    expected = set()
    destinations = {}
    for path in sorted(ROUTES_FOLDER.glob("*.geojson")):
        document = json.loads(path.read_text())
        for feature in document["features"]:
            properties = feature["properties"]
            if properties["kind"] == "segment":
                expected.add((path.stem, properties["id"], properties["from"], properties["to"], properties["mode"]))
            elif properties.get("role") == "destination":
                destinations[path.stem] = properties["id"]
    rows = table.to_pylist()
    assert {(r["route"], r["segment"], r["from"], r["to"], r["mode"]) for r in rows} == expected
    assert len(rows) == len(expected) == 25
    assert all(r["destination"] == destinations[r["route"]] and r["cells"] > 0 for r in rows)
    assert {r["route_name"] for r in rows if r["route"] == "channel"} == {"Channel"}
    # The folder argument reads the same files.
    assert stroom.routes(ROUTES_FOLDER).equals(table)


def test_route_geojson_holds_stations_segments_and_cells():
    document = stroom.route_geojson("channel")
    assert document["type"] == "FeatureCollection"
    kinds = {feature["properties"].get("kind") for feature in document["features"]}
    assert {"station", "segment"} <= kinds
    cells = [f for f in document["features"] if "hex_id" in f["properties"]]
    assert cells and all(f["geometry"]["type"] == "Polygon" for f in cells)
    with pytest.raises(stroom.RouteError, match="atlantis"):
        stroom.route_geojson("atlantis")

