"""Type stubs of the public API of stroom.

Dates are ``datetime.date`` or ``YYYY-MM-DD`` text; times are UTC. Counts of
devices are sums over reported cell-hours (a cell-hour below the store's
privacy threshold k is never stored); counts of people are official
arrivals per station and day. Every table is a ``pyarrow.Table``.
"""

import datetime
import os
from types import TracebackType
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Type, Union

import pyarrow

__version__: str

_Path = Union[str, os.PathLike[str]]
_Date = Union[datetime.date, str]
_Progress = Union[bool, Callable[[int, int], None], None]

# Exceptions. The message of each is the Rust error's text: for bad input it
# names the file, the line (CSV) or row (Parquet), the column and the value.

class StroomError(Exception):
    """The base of every stroom error."""

class StoreError(StroomError):
    """Opening, reading or writing a store failed: no store at the location
    (the message names it), an unreachable object store, a Delta error."""

class IngestError(StoreError):
    """A provider or arrivals file was refused during ingest; nothing was
    committed and every table keeps its version."""

class QueryError(StroomError):
    """A SQL error: the parser's, the planner's, an unknown table or column."""

class ModelError(StroomError):
    """A model or backtest problem: an unknown model, a parameter out of
    range, too little data for the folds asked for."""

class RouteError(StroomError):
    """An unknown route, segment or station, or text that is not a target
    (``station:ID`` or ``segment:ROUTE/SEGMENT``)."""

class ApiError(StroomError):
    """An HTTP status of 400 or more from the REST API (raised by
    :class:`Client`). The message holds the method, the path, the status and
    the problem's ``detail``."""

    status: int
    """The HTTP status (500 for a job that failed on the server)."""
    problem: Dict[str, Any]
    """The RFC 9457 problem document: ``type``, ``title``, ``status``,
    ``detail`` (and ``job`` for a failed job)."""
    def __init__(self, status: int, problem: Dict[str, Any], message: Optional[str] = None) -> None: ...

# The store.

class Store:
    """A stroom store: one Delta table per name (``density``,
    ``density_daily``, ``arrivals``, ``forecasts``, ``backtests``) under a
    folder or an ``s3://bucket/prefix`` URL."""

    def __init__(
        self,
        url: _Path,
        storage_options: Optional[Dict[str, str]] = None,
        cluster: Optional[str] = None,
    ) -> None:
        """Opens an existing store for reading.

        ``storage_options`` override the AWS variables for S3 (lower-case
        names: ``aws_endpoint_url``, ``aws_region``, ``aws_allow_http``, …; an
        unknown key is refused). ``cluster`` (``df://HOST:PORT``) runs the
        queries on a Ballista scheduler.

        Raises StoreError when the location holds no store (naming it) or
        cannot be reached.
        """
    @classmethod
    def create(
        cls, url: _Path, storage_options: Optional[Dict[str, str]] = None, cluster: Optional[str] = None
    ) -> "Store":
        """A store for writing: a local folder is created if missing; the
        ingest functions create the tables. Raises StoreError for a location
        that is not usable."""
    @property
    def url(self) -> str:
        """The location as given (a folder or an ``s3://`` URL)."""
    def tables(self) -> pyarrow.Table:
        """One row per table: ``table`` (str), ``version`` (int64), ``rows``
        (int64), ``first`` and ``last`` (str or null: the earliest and latest
        day or time it holds)."""
    def versions(self) -> Dict[str, int]:
        """The latest version of each table that exists."""
    def sql(self, query: str, as_of: Union[int, str, datetime.datetime, None] = None) -> pyarrow.Table:
        """Runs a read-only SQL query (DataFusion's dialect).

        Tables: ``density`` (cell BIGINT, ts TIMESTAMP, count INT, day DATE),
        ``density_daily`` (cell, day, devices, cell_hours), ``arrivals``
        (station TEXT, date DATE, count INT), ``forecasts``, ``backtests``;
        the H3 functions (``h3_cell_to_string``, ``h3_string_to_cell``,
        ``h3_cell_to_parent``, ``h3_latlng_to_cell``, …). ``as_of`` reads the
        store as it was: a version number of every table, or a time (ISO
        text, or a datetime; naive means UTC).

        Raises QueryError for a SQL error (its message once), StoreError when
        the store cannot be read.
        """
    def series(
        self,
        route: str,
        start: _Date,
        end: _Date,
        level: Literal["segment", "station"] = "segment",
        hourly: bool = False,
        routes: Optional[_Path] = None,
    ) -> pyarrow.Table:
        """A route's device density from ``start`` (inclusive) to ``end``
        (exclusive): per segment, or around each station (``level="station"``),
        of a shipped route or one in the folder ``routes``.

        Columns: ``name`` (str: the segment or station id), ``time`` (date32,
        or a timestamp when ``hourly``), ``devices`` (int64: devices counted
        over the reported cell-hours), ``cell_hours`` (int64: cell-hours
        reported). Days on which every cell was suppressed have no row.

        Raises RouteError for an unknown route, ValueError for ``start`` not
        before ``end`` or another ``level``, StoreError or QueryError when the
        store cannot be read.
        """
    def cell_series(self, cell: Union[str, int], start: _Date, end: _Date, hourly: bool = False) -> pyarrow.Table:
        """An H3 cell's density (the sum over its descendants at the storage
        resolution) from ``start`` (inclusive) to ``end`` (exclusive).
        ``cell`` is the hexadecimal string or the integer index.

        Columns: ``time`` (date32, or timestamp[us, UTC] when ``hourly``),
        ``devices`` (int64), ``cell_hours`` (int64).

        Raises RouteError for a value that is no H3 cell or a cell finer than
        the store's resolution, StoreError when the store holds no density.
        """
    def nowcast(
        self, route: str, date: Optional[_Date] = None, cells: int = 50, routes: Optional[_Path] = None
    ) -> Dict[str, Any]:
        """How unusual ``date``'s density (the latest day the store holds when
        None) is on a route: every segment and the ``cells`` most unusual
        cells, each with ``devices``, ``baseline`` (the median of the same
        weekday over the previous eight weeks), ``spread`` and the robust
        ``z``, most unusual first; entries with a count below k are left out.
        The same document as ``GET /v1/routes/{route}/nowcast``.

        Raises RouteError for an unknown route, StoreError when the store
        holds no density on that day.
        """
    def arrivals(self, station: str, start: Optional[_Date] = None, end: Optional[_Date] = None) -> pyarrow.Table:
        """Official arrivals (people per day) at a station, every day the
        store holds when ``start`` and ``end`` are None.

        Columns: ``date`` (date32), ``count`` (int32).
        """

def routes(folder: Optional[_Path] = None) -> pyarrow.Table:
    """The routes (the shipped ``data/routes`` when ``folder`` is None), one
    row per segment: ``route``, ``route_name``, ``segment``, ``mode``
    (``land`` or ``sea``), ``from``, ``to`` (station ids), ``cells`` (int64:
    H3 cells at resolution 7 within 2 rings of the path), ``destination``.

    Raises RouteError for a route file that does not validate.
    """

def route_geojson(route: str, folder: Optional[_Path] = None) -> Dict[str, Any]:
    """A route as an RFC 7946 FeatureCollection: station points, segment
    lines and one polygon per H3 cell (``hex_id``); coordinates are
    ``[longitude, latitude]``. Raises RouteError for an unknown route."""

# Backtests and forecasts.

class BacktestResult:
    """What one backtest made; the same as ``stroom backtest --out``."""

    @property
    def run_id(self) -> str:
        """The run's UUID (also in the store's ``backtests`` table when recorded)."""
    @property
    def forecasts(self) -> pyarrow.Table:
        """Every fold's forecasts (= forecasts.parquet): ``target``, ``model``
        (str), ``cutoff`` (date32: the last day of data), ``date`` (date32),
        ``horizon`` (int32: days after the cutoff), ``actual`` (float64, null
        when unknown), ``mean``, ``q10``, ``q50``, ``q90``, ``lo80``,
        ``hi80``, ``lo95``, ``hi95`` (float64: people per day, never
        negative), ``chosen`` (str or null: the model ``auto`` picked)."""
    @property
    def metrics(self) -> pyarrow.Table:
        """Accuracy averaged over folds (= metrics.csv): ``model`` (str),
        ``horizon`` (int32; null for the row over all horizons, which the CSV
        writes as ``all``), ``n`` (forecasts scored), ``mae``, ``mase``,
        ``smape`` (0 to 200), ``wape``, ``rmse``, ``rmsse``, ``coverage80``,
        ``coverage95`` (shares, 0 to 1), ``interval_score80``,
        ``interval_score95``, ``pinball`` (float64; null when not finite).
        MASE and RMSSE are scaled by the in-sample seasonal-naive error."""
    @property
    def series(self) -> pyarrow.Table:
        """The daily series the models read (= series.csv): ``date``,
        ``target`` (people), then one float64 column per upstream signal,
        named ``ROUTE/SEGMENT (8 weeks)`` and ``ROUTE/SEGMENT (104 weeks)``:
        the density excess over that baseline."""
    @property
    def run(self) -> Dict[str, Any]:
        """The run's description (= run.json): cutoffs, vintage, params,
        leads_at_last_cutoff, auto_choices, metrics, …"""
    def write(self, folder: _Path) -> None:
        """Writes forecasts.parquet, metrics.csv, series.csv and run.json
        into ``folder``, as ``stroom backtest --out`` does."""

class ForecastResult:
    """What one forecast run made."""

    @property
    def run_id(self) -> str:
        """The run's UUID (also in the store's ``forecasts`` table when recorded)."""
    @property
    def forecasts(self) -> pyarrow.Table:
        """One row per target and day, as the store's ``forecasts`` table
        holds them: ``target``, ``model``, ``chosen`` (str or null),
        ``cutoff``, ``date`` (date32), ``horizon`` (int32), ``mean``, ``q10``,
        ``q50``, ``q90``, ``lo80``, ``hi80``, ``lo95``, ``hi95`` (float64:
        people per day)."""
    @property
    def run(self) -> Dict[str, Any]:
        """The run's description: vintage, params, …"""

def backtest(
    store: Store,
    target: str,
    horizon: int = 14,
    folds: int = 20,
    step: int = 7,
    models: Optional[Sequence[str]] = None,
    vintage: bool = False,
    record: bool = True,
    routes: Optional[_Path] = None,
    calibration_origins: int = 28,
    calibration_step: int = 6,
    window: int = 7,
    holidays: Optional[Sequence[datetime.date]] = None,
    progress: _Progress = None,
) -> BacktestResult:
    """Backtests models on ``target`` (``station:ID`` or
    ``segment:ROUTE/SEGMENT``): ``folds`` cutoffs ``step`` days apart, each
    forecasting ``horizon`` days (1 to 28), statsforecast's cross-validation
    convention.

    ``models`` defaults to auto, ensemble, elasticnet, ets, moving_average,
    seasonal_naive, naive (``elasticnet_univariate`` is also known).
    ``vintage`` fits each fold on the data as published by its cutoff day.
    ``record`` adds the run to the store's ``backtests`` table. ``routes`` is
    a folder of route files (the shipped routes when None). Intervals come
    from ``calibration_origins`` origins ``calibration_step`` days apart
    before each cutoff; ``window`` is the moving average's length in days.
    ``progress=True`` shows a tqdm bar when tqdm is installed; a callable gets
    ``(folds_done, folds_total)`` in the calling thread, at most every 100 ms
    and once more at the end. The GIL is released; Ctrl-C interrupts.

    Raises RouteError for a bad target or an unknown station, route or
    segment; ModelError for an unknown model, a parameter out of range or
    too little data; StoreError when the store cannot be read or written.
    """

def forecast(
    store: Store,
    route: Optional[Sequence[str]] = None,
    target: Optional[Sequence[str]] = None,
    model: str = "auto",
    horizon: int = 14,
    record: bool = True,
    routes: Optional[_Path] = None,
    calibration_origins: int = 28,
    calibration_step: int = 6,
    window: int = 7,
    holidays: Optional[Sequence[datetime.date]] = None,
) -> ForecastResult:
    """Forecasts the ``horizon`` days after the last data at the destination
    of each route in ``route`` and at each ``target``; every route's
    destination when both are None. ``record`` adds the run, with its data
    vintage, to the store's ``forecasts`` table (which the API serves).

    Raises RouteError, ModelError or StoreError as :func:`backtest` does.
    """

# Data in.

def simulate(
    out: _Path,
    start: str = "2023-01-01",
    days: int = 730,
    seed: int = 42,
    resolution: int = 7,
    background: Literal["corridor", "bbox"] = "corridor",
    scale: float = 1.0,
    buffer: int = 2,
    k: int = 15,
    form: Literal["cell", "latlon"] = "cell",
    synthetic_channel: bool = False,
    closure: bool = True,
    routes: Optional[_Path] = None,
) -> Dict[str, Any]:
    """Writes synthetic provider files into ``out``: ``density/*.parquet``
    (one file a day, devices per H3 cell and hour, k applied),
    ``arrivals.csv`` (date, station, count), ``truth.parquet`` and
    ``manifest.json``, as ``stroom simulate`` does. The same arguments give
    byte-identical files.

    Returns the manifest's report: density_files, density_rows,
    suppressed_cell_hours, grid_cells, arrivals_rows, truth_rows, totals (per
    route) and segments (travel days and lead of each).
    """

def ingest_density(
    store: Store,
    paths: Union[_Path, Sequence[_Path]],
    resolution: int = 7,
    k: int = 15,
    add_to_stored: bool = False,
    replace: bool = False,
) -> Dict[str, Any]:
    """Ingests hourly device counts: CSV (also gzip or zstd) or Parquet files
    (or folders of them) with columns ``ts,lat,lon,count`` or
    ``ts,cell,count``, summed per (cell, hour) at H3 ``resolution``; sums
    below ``k`` (at least 15) are suppressed. One commit, or none; a file
    ingested before is skipped, and a delivery that repeats a (cell, hour)
    already stored is refused unless ``add_to_stored`` (a supplementary
    delivery, such as a second provider's devices) adds it, or ``replace``
    (a corrected delivery) replaces every stored cell-hour of the hours the
    files cover, in the same commit.

    Returns rows_read, cell_hours, cells, suppressed, rows_written,
    replaced (stored cell-hours replaced), held (stored cell-hours a
    correction would have moved by less than k, kept as they were), days,
    version_before, version and sources (path, sha256, rows,
    already_ingested per file).

    Raises IngestError naming the file, line or row, column and value of the
    first bad input; the table versions do not change.
    """

def ingest_arrivals(
    store: Store,
    path: _Path,
    station: Optional[str] = None,
    date_column: Optional[str] = None,
    count_column: Optional[str] = None,
    station_column: Optional[str] = None,
    empty: Literal["error", "zero"] = "error",
) -> Dict[str, Any]:
    """Ingests official daily arrivals: a CSV with ``date,station,count``, or
    ``date,count`` with ``station``, or other columns named by the
    ``*_column`` arguments. ``empty="zero"`` reads an empty count up to the
    station's last figure as zero (later ones are unknown and left out).
    Rows merge into the table by (station, date).

    Returns path, sha256, already_ingested (then nothing was written),
    rows_read, rows_loaded, zero_filled, unknown_trailing, new_rows,
    revised_rows, stations (list), first_date, last_date (ISO text or None),
    version_before and version.

    Raises IngestError naming the file, line, column and value.
    """

def real_uk_arrivals_csv() -> str:
    """The shipped real UK small-boat arrivals (CC BY 4.0) as CSV text:
    columns ``full_date``, ``migrants_arrived``. Ingest it with
    ``station="dover", date_column="full_date",
    count_column="migrants_arrived", empty="zero"``."""

# The API server and its keys.

def create_key(
    keys: _Path,
    role: Literal["viewer", "analyst", "ingest", "admin"],
    routes: Optional[Sequence[str]] = None,
    expires: Optional[str] = None,
) -> str:
    """Appends a key with ``role`` (limited to ``routes`` when given) to the
    keys file ``keys`` (TOML; only a hash of the token is stored) and
    returns its bearer token, which is shown only this once. ``expires``
    is a duration from now (``"90d"``, ``"12h"``, ``"30m"``, ``"2w"``) or a
    time (RFC 3339 or ``YYYY-MM-DD``); the key never expires when absent.
    A running server reads the keys file again when it changes. Raises
    ValueError for an unknown role or expiry, StroomError when the file
    cannot be written."""

class Server:
    """The REST API (the same server as ``stroom serve``) on a loopback
    address, in a background thread; a context manager that stops it."""

    def __init__(
        self,
        store: _Path,
        keys: _Path,
        addr: str = "127.0.0.1:0",
        audit: Optional[_Path] = None,
        storage_options: Optional[Dict[str, str]] = None,
        routes: Optional[_Path] = None,
        capacities: Optional[_Path] = None,
    ) -> None:
        """Starts serving ``store`` with the keys in ``keys`` (read once, at
        start); port 0 picks a free port. ``audit`` is the JSON-lines audit
        log. ``capacities`` is the station capacity file (TOML, as ``stroom
        serve --capacities``), created by the first capacity set through the
        API; capacities are kept in memory only when it is None. Raises
        StoreError when there is no store, StroomError for an unreadable key
        or capacity file or an address in use."""
    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
    def stop(self) -> None:
        """Stops the server: the requests in flight finish, then it returns."""
    def __enter__(self) -> "Server": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None: ...

class Client:
    """A client of the REST API in pure Python (standard library and pyarrow).

    ``token`` is a bearer token (its role and routes limit what it sees);
    ``timeout`` limits each HTTP request, in seconds. Tables keep the rest of
    the JSON answer (run id, generation time, vintage, k) as JSON text under
    the ``b"stroom"`` key of their schema metadata. Every HTTP status of 400
    or more raises ApiError; an unreachable server raises ``urllib.error.URLError``.
    """

    url: str
    timeout: float
    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None: ...
    def routes(self) -> pyarrow.Table:
        """``GET /v1/routes``: one row per route the key may see: ``id``,
        ``name``, ``destination`` (str), ``stations``, ``segments`` (int64)."""
    def route(self, route: str) -> Dict[str, Any]:
        """``GET /v1/routes/{route}``: id, name, description, destination,
        stations (id, name, country, role, lat, lng), segments (id, name,
        from, to, mode) and geometry (a GeoJSON FeatureCollection)."""
    def forecast(
        self, route: str, horizon: Optional[int] = None, run: Optional[str] = None, explain: bool = False
    ) -> pyarrow.Table:
        """``GET /v1/routes/{route}/forecast``: the latest run's forecasts
        (or run ``run``'s), the first ``horizon`` days (1 to 28) when given.
        One row per target and day: ``run_id``, ``target``, ``station``,
        ``model``, ``chosen`` (str or null), ``cutoff``, ``date`` (date32),
        ``horizon`` (int32), ``mean``, ``q10``, ``q50``, ``q90``, ``lo80``,
        ``hi80``, ``lo95``, ``hi95`` (float64: people per day). With
        ``explain``, also ``level``, ``signals`` (list of segment,
        baseline_weeks, lead_days, part) and ``rest``, which sum to ``mean``."""
    def station_forecast(self, station: str, horizon: Optional[int] = None, explain: bool = False) -> pyarrow.Table:
        """``GET /v1/stations/{station}/forecast``, with the columns of :meth:`forecast`."""
    def series(
        self, route: str, start: _Date, end: _Date, level: Literal["segment", "station"] = "segment"
    ) -> pyarrow.Table:
        """``GET /v1/routes/{route}/series`` (analyst keys): daily density
        from ``start`` (inclusive) to ``end`` (exclusive, at most 366 days):
        ``name`` (str), ``time`` (date32), ``devices``, ``cell_hours`` (int64)."""
    def cell_series(
        self, cell: Union[str, int], start: _Date, end: _Date, resolution: Literal["day", "hour"] = "day"
    ) -> pyarrow.Table:
        """``GET /v1/cells/{cell}/series`` (analyst keys): ``time`` (date32,
        or timestamp[us, UTC] for ``resolution="hour"``, at most 31 days),
        ``devices``, ``cell_hours`` (int64)."""
    def nowcast(self, route: str, date: Optional[_Date] = None, cells: Optional[int] = None) -> Dict[str, Any]:
        """``GET /v1/routes/{route}/nowcast``: how unusual the day's density is
        per segment and, for analyst keys, for the most unusual cells."""
    def alerts(self, status: Literal["open", "closed", "all"] = "open", station: Optional[str] = None) -> pyarrow.Table:
        """``GET /v1/alerts``: one row per capacity alert of the key's
        stations (``station``, ``date``, ``window``, ``capacity``,
        ``probability``, ``tail``, ``expected_excess``, ``median``,
        ``run_id``, ``status``, ``opened_by``, ``opened_at``, ``closed_by``,
        ``closed_at``, ``closed_because``); ``level`` and ``capacities`` in
        the schema metadata."""
    def set_capacity(
        self, station: str, daily: Optional[float] = None, weekly: Optional[float] = None
    ) -> Dict[str, Any]:
        """``PUT /v1/stations/{station}/capacity`` (admin): the capacity now in force."""
    def scenario(
        self,
        route: str,
        close: str,
        start: _Date,
        until: Optional[_Date] = None,
        divert_to: Optional[str] = None,
        share: Optional[float] = None,
        transfer_days: Optional[int] = None,
        travel_days: Optional[int] = None,
        divert_travel_days: Optional[int] = None,
    ) -> pyarrow.Table:
        """``POST /v1/scenarios`` (analyst): one row per station (``target``,
        ``role``), ``variant`` (``baseline`` or ``scenario``) and day, with
        ``mean`` and the quantiles; the closure and its assumptions in the
        metadata (``stroom``)."""
    def scenarios(self) -> List[Dict[str, Any]]:
        """``GET /v1/scenarios``: the recorded scenarios of the key's routes, newest first."""
    def map(
        self, route: str, format: Literal["geojson", "svg", "png"] = "geojson", date: Optional[_Date] = None
    ) -> Union[Dict[str, Any], str, bytes]:
        """``GET /v1/routes/{route}/map.{format}`` on ``date`` (the latest
        run's first day when None): a GeoJSON dict, SVG text or PNG bytes."""
    def briefing(self, route: str, date: None = None) -> str:
        """``GET /v1/routes/{route}/briefing.html``: the printable page of the
        latest forecast. The API takes no date here; a date raises ValueError."""
    def backtest(
        self,
        target: str,
        horizon: int = 14,
        folds: int = 20,
        step: int = 7,
        models: Optional[Sequence[str]] = None,
        wait: bool = True,
        poll: float = 0.5,
        timeout: float = 600,
    ) -> Dict[str, Any]:
        """``POST /v1/backtests`` (analyst keys), then, with ``wait``, polls
        the job every ``poll`` seconds until it succeeded: id, status,
        request, submitted_at, finished_at, run_id and metrics (per model:
        n, mae, mase, smape, wape, rmse, coverage80, coverage95). A failed job
        raises ApiError (status 500, the job in ``problem["job"]``); one
        still running after ``timeout`` seconds raises TimeoutError."""
    def refresh(self, wait: bool = True, poll: float = 0.5, timeout: float = 600) -> Dict[str, Any]:
        """``POST /v1/forecasts/refresh`` (admin keys): recomputes every
        route's forecasts; waits as :meth:`backtest` does. The job lists the
        targets and the new run id."""
    def upload(
        self,
        table: Literal["density", "arrivals"],
        source: Union[_Path, bytes],
        name: Optional[str] = None,
        station: Optional[str] = None,
        date_column: Optional[str] = None,
        count_column: Optional[str] = None,
        station_column: Optional[str] = None,
        empty: Optional[Literal["error", "zero"]] = None,
    ) -> Dict[str, Any]:
        """``POST /v1/ingest/{table}`` (ingest keys): a provider file (a path,
        streamed, or bytes; CSV, gzip or zstd CSV, or density Parquet),
        validated and committed as ``stroom ingest`` does. Returns status
        (``ingested`` or ``already_ingested``), sha256, rows_read,
        rows_written, suppressed and the table versions; a refused file
        raises ApiError with status 422 naming the line, column and value."""
    def health(self) -> bool:
        """``GET /healthz``: True when the server answers ``ok``, False when
        it answers otherwise or cannot be reached."""

__all__: List[str]
