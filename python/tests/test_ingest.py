"""Ingest from Python: a bad file is refused with its file, line, column and
value and commits nothing; a file ingested before is recognised."""

from __future__ import annotations

import pytest

import stroom

# A resolution-7 cell (the storage resolution) and a good hour.
CELL = "871fb4662ffffff"


def test_a_malformed_density_csv_names_file_line_field_and_value(store, tmp_path):
    bad = tmp_path / "provider-bad.csv"
    bad.write_text(f"cell,ts,count\n{CELL},2023-03-01T10:00:00Z,30\n{CELL},2023-03-01T11:00:00Z,many\n")
    before = store.versions()
    with pytest.raises(stroom.IngestError) as caught:
        stroom.ingest_density(store, [bad])
    message = str(caught.value)
    for piece in ("provider-bad.csv", "line 3", "column 'count'", "value 'many'"):
        assert piece in message, message
    assert isinstance(caught.value, stroom.StoreError)
    assert store.versions() == before


def test_a_bad_timestamp_is_located_too(store, tmp_path):
    bad = tmp_path / "april.csv"
    bad.write_text(f"ts,cell,count\n2023-03-01T10:00:00Z,{CELL},30\n2023-04-31T10:00:00Z,{CELL},30\n")
    before = store.versions()
    with pytest.raises(stroom.IngestError, match=r"april\.csv, line 3, column 'ts', value '2023-04-31T10:00:00Z'"):
        stroom.ingest_density(store, str(bad))
    assert store.versions() == before


def test_a_malformed_arrivals_csv_commits_nothing(store, tmp_path):
    bad = tmp_path / "arrivals-bad.csv"
    bad.write_text("date,station,count\n2023-03-01,dover,12\n2023-03-02,dover,-3\n")
    before = store.versions()
    with pytest.raises(stroom.IngestError) as caught:
        stroom.ingest_arrivals(store, bad)
    message = str(caught.value)
    for piece in ("arrivals-bad.csv", "line 3", "column 'count'", "value '-3'"):
        assert piece in message, message
    assert store.versions() == before


def test_a_file_ingested_again_is_recognised_and_skipped(small, store):
    before = store.versions()
    again = stroom.ingest_arrivals(store, small.sim / "arrivals.csv")
    assert again["already_ingested"] is True
    assert store.versions()["arrivals"] == before["arrivals"]
    first_day = small.sim / "density" / "density-2023-01-01.parquet"
    assert first_day.exists()
    density = stroom.ingest_density(store, [first_day])
    assert [source["already_ingested"] for source in density["sources"]] == [True]
    assert density["rows_written"] == 0
    assert store.versions() == before
    assert store.sql("SELECT count(*) AS n FROM density").column("n").to_pylist() == [small.simulated["density_rows"]]


def test_the_real_uk_arrivals_ingest_with_mapped_columns(tmp_path):
    text = stroom.real_uk_arrivals_csv()
    header = text.splitlines()[0].split(",")
    assert "full_date" in header and "migrants_arrived" in header
    path = tmp_path / "uk.csv"
    path.write_text(text)
    store = stroom.Store.create(tmp_path / "store")
    report = stroom.ingest_arrivals(
        store, path, station="dover", date_column="full_date", count_column="migrants_arrived", empty="zero"
    )
    assert report["stations"] == ["dover"]
    loaded = store.sql("SELECT count(*) AS n, min(date) AS first, max(date) AS last FROM arrivals").to_pylist()[0]
    assert loaded["n"] == report["rows_loaded"] > 3000
    assert str(loaded["first"]) == str(report["first_date"]) == "2018-01-01"
    assert str(loaded["last"]) == str(report["last_date"])
