"""Fixtures shared by the tests: one small simulated store per session.

The simulator covers every shipped route for 400 days from 2023-01-01
(about 69 million density rows), enough for backtests and forecasts at the
routes' destinations (dover, ter-apel, ventimiglia) and small enough that
the suite runs in a few minutes on two cores. Tests that write to the store
(a recorded backtest, a forecast run) only add runs; none changes the data.
"""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
from typing import Any, Dict

import pytest

import stroom

START = datetime.date(2023, 1, 1)
DAYS = 400
# The last simulated day, the last day of every station's arrivals.
LAST_DAY = START + datetime.timedelta(days=DAYS - 1)


@dataclasses.dataclass
class SmallStore:
    """The simulated provider files, the store they were ingested into, and
    what each step reported."""

    root: pathlib.Path
    sim: pathlib.Path
    path: pathlib.Path
    store: stroom.Store
    simulated: Dict[str, Any]
    arrivals: Dict[str, Any]
    density: Dict[str, Any]


@pytest.fixture(scope="session")
def small(tmp_path_factory: pytest.TempPathFactory) -> SmallStore:
    root = tmp_path_factory.mktemp("stroom")
    sim = root / "sim"
    simulated = stroom.simulate(sim, start=START.isoformat(), days=DAYS, seed=7)
    path = root / "store"
    store = stroom.Store.create(path)
    arrivals = stroom.ingest_arrivals(store, sim / "arrivals.csv")
    density = stroom.ingest_density(store, sim / "density")
    return SmallStore(root, sim, path, store, simulated, arrivals, density)


@pytest.fixture(scope="session")
def store(small: SmallStore) -> stroom.Store:
    return small.store


@pytest.fixture(scope="session")
def dover_arrivals(small: SmallStore) -> Dict[datetime.date, int]:
    """Dover's daily arrivals as the simulator wrote them, read from its
    CSV without stroom."""
    import pyarrow.csv

    rows = pyarrow.csv.read_csv(small.sim / "arrivals.csv").to_pylist()
    return {row["date"]: row["count"] for row in rows if row["station"] == "dover"}


@pytest.fixture(scope="session")
def channel_forecast(store: stroom.Store) -> stroom.ForecastResult:
    """One recorded forecast run of the Channel route (its destination, Dover)."""
    return stroom.forecast(store, route=["channel"])


@pytest.fixture(scope="session")
def last_day() -> datetime.date:
    return LAST_DAY
