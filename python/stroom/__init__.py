"""stroom: forecasts of migration flows along routes from aggregated smartphone-density counts.

The native module (the Rust core) stores density and arrivals as Delta tables
indexed on H3 cells, queries them with DataFusion, backtests and forecasts;
every table comes back as a ``pyarrow.Table`` (``polars.from_arrow`` and
``.to_pandas()`` take it as it is). :class:`Client` reads a running API
server in pure Python.

Quick start::

    import stroom
    stroom.simulate("sim", days=400, seed=7)                  # synthetic provider files
    store = stroom.Store.create("store")
    stroom.ingest_arrivals(store, "sim/arrivals.csv")
    stroom.ingest_density(store, "sim/density")
    store.sql("SELECT station, sum(count) AS people FROM arrivals GROUP BY station")
    result = stroom.backtest(store, "station:dover", folds=5, progress=True)
    result.metrics.to_pandas()                                # MAE, MASE, coverage per model
    stroom.forecast(store, route=["channel"]).forecasts       # the next 14 days at Dover
    store.series("channel", "2023-06-01", "2023-07-01")       # daily devices per segment
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

from . import _stroom
from ._errors import ApiError
from ._stroom import (
    BacktestResult,
    ForecastResult,
    IngestError,
    ModelError,
    QueryError,
    RouteError,
    Server,
    Store,
    StoreError,
    StroomError,
    __version__,
    create_key,
    forecast,
    ingest_arrivals,
    ingest_density,
    real_uk_arrivals_csv,
    route_geojson,
    routes,
    simulate,
)
from .client import Client

__all__ = [
    "ApiError",
    "BacktestResult",
    "Client",
    "ForecastResult",
    "IngestError",
    "ModelError",
    "QueryError",
    "RouteError",
    "Server",
    "Store",
    "StoreError",
    "StroomError",
    "__version__",
    "backtest",
    "create_key",
    "forecast",
    "ingest_arrivals",
    "ingest_density",
    "real_uk_arrivals_csv",
    "route_geojson",
    "routes",
    "simulate",
]

Progress = Union[bool, Callable[[int, int], None], None]


def backtest(store: Store, target: str, *args: Any, progress: Progress = None, **kwargs: Any) -> BacktestResult:
    """Backtests the models on ``target`` (``station:ID`` or
    ``segment:ROUTE/SEGMENT``) over rolling folds; see the type stubs for
    every argument, which pass through unchanged to the native backtest.

    ``progress=True`` shows a tqdm bar of folds when tqdm is installed (and
    nothing otherwise); a callable is called with ``(folds_done,
    folds_total)`` after each fold; None or False shows nothing.
    """
    callback, bar = _progress_callback(progress, target)
    try:
        return _stroom.backtest(store, target, *args, progress=callback, **kwargs)
    finally:
        if bar is not None:
            bar.close()


def _progress_callback(progress: Progress, target: str) -> Tuple[Optional[Callable[[int, int], None]], Any]:
    """The callback the native backtest gets for ``progress``, and the bar to
    close afterwards (if any)."""
    if progress is None or progress is False:
        return None, None
    if progress is True:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None, None
        bar = tqdm(desc=f"backtest {target}", unit="fold")

        def update(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
                bar.refresh()
            bar.update(done - bar.n)

        return update, bar
    if callable(progress):
        return progress, None
    raise TypeError(
        f"progress is True, False, None or a callable taking (done, total), not {type(progress).__name__}"
    )
