"""A client of the stroom REST API (``stroom serve``) in pure Python.

It needs only the standard library and pyarrow, so it runs where the native
module cannot be installed. Tabular answers come back as ``pyarrow.Table``
with fixed column types; the rest of each JSON answer (run id, generation
time, data vintage, privacy threshold) is kept as JSON text under the
``b"stroom"`` key of the table's schema metadata. Every HTTP error becomes an
:class:`stroom.ApiError` that carries the status and the server's RFC 9457
problem document. The contract is ``api/openapi.json``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, BinaryIO, Dict, List, Mapping, Optional, Sequence, Union

import pyarrow as pa

from ._errors import ApiError

__all__ = ["Client"]

DateLike = Union[_dt.date, str]

_ROUTES_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("name", pa.string()),
        ("destination", pa.string()),
        ("stations", pa.int64()),
        ("segments", pa.int64()),
    ]
)

_FORECAST_FIELDS = [
    ("run_id", pa.string()),
    ("target", pa.string()),
    ("station", pa.string()),
    ("model", pa.string()),
    ("chosen", pa.string()),
    ("cutoff", pa.date32()),
    ("date", pa.date32()),
    ("horizon", pa.int32()),
] + [(name, pa.float64()) for name in ("mean", "q10", "q50", "q90", "lo80", "hi80", "lo95", "hi95")]
_FORECAST_SCHEMA = pa.schema(_FORECAST_FIELDS)
# With explain=True: each day's mean split into parts that sum to it.
_SIGNAL_PART = pa.struct(
    [("segment", pa.string()), ("baseline_weeks", pa.int32()), ("lead_days", pa.int32()), ("part", pa.float64())]
)
_EXPLAINED_SCHEMA = pa.schema(
    _FORECAST_FIELDS + [("level", pa.float64()), ("signals", pa.list_(_SIGNAL_PART)), ("rest", pa.float64())]
)

# A scenario: baseline and scenario rows of each station it touches.
_SCENARIO_SCHEMA = pa.schema(
    [("run_id", pa.string()), ("target", pa.string()), ("role", pa.string()), ("variant", pa.string()),
     ("cutoff", pa.date32()), ("date", pa.date32()), ("horizon", pa.int32())]
    + [(name, pa.float64()) for name in ("mean", "q10", "q50", "q90", "lo80", "hi80", "lo95", "hi95")]
)

_HOUR = pa.timestamp("us", tz="UTC")

# The states a job ends in (JobStatus in the OpenAPI document).
_FINISHED = ("succeeded", "failed", "interrupted")


_ALERTS_SCHEMA = pa.schema(
    [
        ("station", pa.string()),
        ("date", pa.date32()),
        ("window", pa.string()),
        ("capacity", pa.float64()),
        ("probability", pa.float64()),
        ("tail", pa.string()),
        ("expected_excess", pa.float64()),
        ("median", pa.float64()),
        ("run_id", pa.string()),
        ("status", pa.string()),
        ("opened_by", pa.string()),
        ("opened_at", pa.string()),
        ("closed_by", pa.string()),
        ("closed_at", pa.string()),
        ("closed_because", pa.string()),
    ]
)


class _Response:
    """The status, headers and body of a successful HTTP exchange."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def object(self) -> Dict[str, Any]:
        """The body as a JSON object; ValueError when it is anything else."""
        value = self.json()
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object, got {type(value).__name__}")
        return value


class Client:
    """A connection to a stroom API server.

    ``url`` is the server's base URL (``http://127.0.0.1:8080``), ``token`` a
    bearer token made by ``stroom keys create`` or :func:`stroom.create_key`
    (its role and routes limit what the client sees), and ``timeout`` the
    limit in seconds on each HTTP request. The client keeps no connection
    open between calls and may be shared between threads.
    """

    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"url={url!r} is not an http:// or https:// URL")
        if not token:
            raise ValueError("token is empty; create one with `stroom keys create` or stroom.create_key")
        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        self._token = token

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # Routes.

    def routes(self) -> pa.Table:
        """The routes the key may see (``GET /v1/routes``): one row per route."""
        rows = self._get("/v1/routes").json()
        return pa.Table.from_pylist(rows, schema=_ROUTES_SCHEMA)

    def route(self, route: str) -> Dict[str, Any]:
        """A route's stations, segments and GeoJSON geometry (``GET /v1/routes/{route}``)."""
        return self._get(f"/v1/routes/{_segment(route)}").object()

    # Forecasts.

    def forecast(
        self, route: str, horizon: Optional[int] = None, run: Optional[str] = None, explain: bool = False
    ) -> pa.Table:
        """A route's forecasts from its latest run, or from run ``run``
        (``GET /v1/routes/{route}/forecast``): one row per target and forecast
        day; ``horizon`` keeps the first days only (1 to 28). With ``explain``,
        three more columns split each day's mean into parts that sum to it:
        ``level``, ``signals`` (segment, baseline_weeks, lead_days, part) and
        ``rest``."""
        query = {"horizon": horizon, "run": run, "explain": "true" if explain else None}
        document = self._get(f"/v1/routes/{_segment(route)}/forecast", query).json()
        return _forecast_table(document, explain)

    def station_forecast(self, station: str, horizon: Optional[int] = None, explain: bool = False) -> pa.Table:
        """A station's forecasts from the latest run that forecast it
        (``GET /v1/stations/{station}/forecast``), with the columns of
        :meth:`forecast`."""
        query = {"horizon": horizon, "explain": "true" if explain else None}
        document = self._get(f"/v1/stations/{_segment(station)}/forecast", query).json()
        return _forecast_table(document, explain)

    # Density series (analyst keys).

    def series(self, route: str, start: DateLike, end: DateLike, level: str = "segment") -> pa.Table:
        """A route's daily device density from ``start`` (inclusive) to ``end``
        (exclusive, at most 366 days later), per segment or around each station
        (``level="station"``) (``GET /v1/routes/{route}/series``)."""
        document = self._get(
            f"/v1/routes/{_segment(route)}/series",
            {"from": _date_text(start, "start"), "to": _date_text(end, "end"), "level": level},
        ).json()
        points = document.pop("points")
        schema = pa.schema(
            [("name", pa.string()), ("time", pa.date32()), ("devices", pa.int64()), ("cell_hours", pa.int64())],
            metadata=_metadata(document),
        )
        rows = [{**p, "time": _dt.date.fromisoformat(p["time"])} for p in points]
        return pa.Table.from_pylist(rows, schema=schema)

    def cell_series(
        self, cell: Union[str, int], start: DateLike, end: DateLike, resolution: str = "day"
    ) -> pa.Table:
        """An H3 cell's device density (the sum over its descendants at the
        storage resolution) from ``start`` (inclusive) to ``end`` (exclusive),
        per day or per hour (``resolution="hour"``, at most 31 days)
        (``GET /v1/cells/{cell}/series``)."""
        cell_text = format(cell, "x") if isinstance(cell, int) else str(cell)
        document = self._get(
            f"/v1/cells/{_segment(cell_text)}/series",
            {"from": _date_text(start, "start"), "to": _date_text(end, "end"), "resolution": resolution},
        ).json()
        points = document.pop("points")
        if document.get("resolution") == "hour":
            time_type: pa.DataType = _HOUR
            rows = [{**p, "time": _timestamp(p["time"])} for p in points]
        else:
            time_type = pa.date32()
            rows = [{**p, "time": _dt.date.fromisoformat(p["time"])} for p in points]
        schema = pa.schema(
            [("time", time_type), ("devices", pa.int64()), ("cell_hours", pa.int64())],
            metadata=_metadata(document),
        )
        return pa.Table.from_pylist(rows, schema=schema)

    # Maps and briefings.

    def nowcast(self, route: str, date: Optional[DateLike] = None, cells: Optional[int] = None) -> Dict[str, Any]:
        """How unusual the day's density (the latest day when None) is per
        segment and, for analyst keys, for the most unusual cells
        (``GET /v1/routes/{route}/nowcast``)."""
        query = {"date": None if date is None else _date_text(date, "date"), "cells": cells}
        return self._get(f"/v1/routes/{_segment(route)}/nowcast", query).object()

    # Capacity alerts.

    def alerts(self, status: str = "open", station: Optional[str] = None) -> pa.Table:
        """Capacity alerts of the stations on the key's routes
        (``GET /v1/alerts``): one row per alert, ``status`` ``open``,
        ``closed`` or ``all``; the alert level and capacities are in the
        table's metadata (``level``, ``capacities`` as JSON)."""
        if status not in ("open", "closed", "all"):
            raise ValueError(f"status={status!r} is not one of 'open', 'closed', 'all'")
        document = self._get("/v1/alerts", {"status": status, "station": station}).object()
        rows = [dict(alert, date=_dt.date.fromisoformat(alert["date"])) for alert in document["alerts"]]
        table = pa.Table.from_pylist(rows, schema=_ALERTS_SCHEMA)
        metadata = {b"level": json.dumps(document["level"]).encode(), b"capacities": json.dumps(document["capacities"]).encode()}
        return table.replace_schema_metadata(metadata)

    def set_capacity(
        self, station: str, daily: Optional[float] = None, weekly: Optional[float] = None
    ) -> Dict[str, Any]:
        """Sets a station's capacity (admin keys; ``PUT
        /v1/stations/{station}/capacity``): arrivals per day, per seven days,
        or both. Returns the capacity now in force."""
        body = {k: v for k, v in (("daily", daily), ("weekly", weekly)) if v is not None}
        return self._request("PUT", f"/v1/stations/{_segment(station)}/capacity", body=body).object()

    def scenario(
        self,
        route: str,
        close: str,
        start: DateLike,
        until: Optional[DateLike] = None,
        divert_to: Optional[str] = None,
        share: Optional[float] = None,
        transfer_days: Optional[int] = None,
        travel_days: Optional[int] = None,
        divert_travel_days: Optional[int] = None,
    ) -> pa.Table:
        """Runs a closure scenario (analyst keys; ``POST /v1/scenarios``):
        segment ``close`` of ``route`` closed from ``start`` (until ``until``),
        and each day ``share`` of the people held taking ``divert_to``. One
        row per station, variant (``baseline`` or ``scenario``) and day; the
        closure and its assumptions are in the table's metadata (``stroom``)."""
        body = {
            "route": route,
            "close": close,
            "from": _date_text(start, "start"),
            "until": None if until is None else _date_text(until, "until"),
            "divert_to": divert_to,
            "share": share,
            "transfer_days": transfer_days,
            "travel_days": travel_days,
            "divert_travel_days": divert_travel_days,
        }
        document = self._request("POST", "/v1/scenarios", body={k: v for k, v in body.items() if v is not None}).json()
        return _scenario_table(document)

    def scenarios(self) -> List[Dict[str, Any]]:
        """The recorded scenarios of the key's routes, newest first
        (``GET /v1/scenarios``): each with ``run_id``, ``closure``,
        ``assumptions`` and ``targets``."""
        return list(self._get("/v1/scenarios").object()["scenarios"])

    def map(
        self, route: str, format: str = "geojson", date: Optional[DateLike] = None
    ) -> Union[Dict[str, Any], str, bytes]:
        """A route's forecast map on ``date`` (the first forecast day when
        absent): a GeoJSON dict (``format="geojson"``), SVG text (``"svg"``)
        or PNG bytes (``"png"``) (``GET /v1/routes/{route}/map.{format}``)."""
        if format not in ("geojson", "svg", "png"):
            raise ValueError(f"format={format!r} is not one of 'geojson', 'svg', 'png'")
        query = {"date": None if date is None else _date_text(date, "date")}
        response = self._get(f"/v1/routes/{_segment(route)}/map.{format}", query)
        if format == "geojson":
            return response.object()
        if format == "svg":
            return response.body.decode("utf-8")
        return response.body

    def briefing(self, route: str, date: Optional[DateLike] = None) -> str:
        """A route's printable, self-contained briefing page as HTML
        (``GET /v1/routes/{route}/briefing.html``), for the first day of the
        latest forecast. The API takes no date for briefings, so ``date``
        other than None is refused rather than ignored."""
        if date is not None:
            raise ValueError(
                "the API serves the briefing of the latest forecast's first day only; "
                "it takes no date (use map(route, date=...) for another day)"
            )
        return self._get(f"/v1/routes/{_segment(route)}/briefing.html").body.decode("utf-8")

    # Jobs.

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
        """Starts a backtest of ``target`` (``station:ID`` or
        ``segment:ROUTE/SEGMENT``) as a job (``POST /v1/backtests``; analyst
        keys). With ``wait`` it polls the job every ``poll`` seconds until it
        has succeeded and returns it (status, run id, metrics per model); a
        failed job (or one interrupted by a server restart) raises
        :class:`ApiError` with status 500 and the job under
        ``problem["job"]``, and a job still running after ``timeout``
        seconds raises ``TimeoutError``. Without ``wait`` it returns the
        queued job."""
        body: Dict[str, Any] = {"target": target, "horizon": horizon, "folds": folds, "step": step}
        if models is not None:
            if isinstance(models, str):
                raise TypeError("models is a list of model names, not one string")
            body["models"] = list(models)
        response = self._request("POST", "/v1/backtests", body=body)
        job = response.object()
        if not wait:
            return job
        location = response.headers.get("Location") or f"/v1/backtests/{_segment(job['id'])}"
        return self._wait("backtest", job, location, poll, timeout)

    def refresh(self, wait: bool = True, poll: float = 0.5, timeout: float = 600) -> Dict[str, Any]:
        """Recomputes every route's forecasts from the latest data as a job
        (``POST /v1/forecasts/refresh``; admin keys); waits as
        :meth:`backtest` does. The finished job lists the targets forecast
        and the run id, which the server serves as soon as it is recorded."""
        response = self._request("POST", "/v1/forecasts/refresh")
        job = response.object()
        if not wait:
            return job
        location = response.headers.get("Location") or f"/v1/forecasts/refresh/{_segment(job['id'])}"
        return self._wait("refresh", job, location, poll, timeout)

    # Uploads.

    def upload(
        self,
        table: str,
        source: Union[str, "os.PathLike[str]", bytes],
        name: Optional[str] = None,
        station: Optional[str] = None,
        date_column: Optional[str] = None,
        count_column: Optional[str] = None,
        station_column: Optional[str] = None,
        empty: Optional[str] = None,
        add_to_stored: bool = False,
        replace: bool = False,
    ) -> Dict[str, Any]:
        """Uploads a provider file (ingest keys; ``POST /v1/ingest/{table}``
        with ``table`` ``"density"`` or ``"arrivals"``): a path, streamed from
        disk, or the file's bytes. CSV (gzip or zstd compressed too) or, for
        density, Parquet; the server validates and commits it exactly as
        ``stroom ingest`` does. ``name`` is the delivery's name (the file's
        name for a path); the arrivals options are those of ``stroom ingest
        arrivals``. For density, ``replace`` makes the file a corrected
        delivery (every stored cell-hour of the hours it covers is replaced;
        ``replaced_cell_hours`` says how many, ``held_cell_hours`` how many
        stored counts it would have moved by less than k and were kept) and
        ``add_to_stored`` a supplementary one; by default a file that
        repeats a stored cell-hour is refused. Returns what the upload did:
        ``status`` (``ingested`` or ``already_ingested``), ``sha256``,
        ``rows_read``, ``rows_written``, ``suppressed``, the table versions. A refused file raises ApiError
        with status 422, its detail naming the line, column and value."""
        if table not in ("density", "arrivals"):
            raise ValueError(f"table={table!r} is not one of 'density', 'arrivals'")
        query: Dict[str, Any] = {"name": name}
        if table == "arrivals":
            if add_to_stored or replace:
                raise ValueError("add_to_stored and replace are density options")
            query.update(
                station=station,
                date_column=date_column,
                count_column=count_column,
                station_column=station_column,
                empty=empty,
            )
        else:
            if any(v is not None for v in (station, date_column, count_column, station_column, empty)):
                raise ValueError("station, date_column, count_column, station_column and empty are arrivals options")
            if add_to_stored and replace:
                raise ValueError("add_to_stored and replace exclude each other")
            query.update(add_to_stored="true" if add_to_stored else None, replace="true" if replace else None)
        if isinstance(source, (bytes, bytearray)):
            return self._request("POST", f"/v1/ingest/{table}", query, content=bytes(source)).object()
        path = os.fspath(source)
        if query["name"] is None:
            query["name"] = os.path.basename(path)
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            return self._request("POST", f"/v1/ingest/{table}", query, content=stream, length=size).object()

    # Health.

    def health(self) -> bool:
        """Whether the server answers its liveness check (``GET /healthz``);
        False when it is unreachable or answers anything but ``ok``."""
        try:
            return bool(self._get("/healthz").object().get("status") == "ok")
        except (OSError, ApiError, ValueError):
            return False

    # Plumbing.

    def _get(self, path: str, query: Optional[Mapping[str, Any]] = None) -> _Response:
        return self._request("GET", path, query)

    def _request(
        self,
        method: str,
        path: str,
        query: Optional[Mapping[str, Any]] = None,
        body: Optional[Any] = None,
        content: Optional[Union[bytes, BinaryIO]] = None,
        length: Optional[int] = None,
    ) -> _Response:
        """Sends one request to ``path`` (absolute, or relative to the server
        root as a Location header gives it) and returns the answer; an HTTP
        status of 400 or more raises :class:`ApiError`. ``body`` goes as
        JSON; ``content`` as raw bytes (a stream of ``length`` bytes is sent
        as it is read)."""
        url = urllib.parse.urljoin(self.url + "/", path.lstrip("/")) if not path.startswith("http") else path
        if query:
            present = {k: v for k, v in query.items() if v is not None}
            if present:
                url += "?" + urllib.parse.urlencode(present)
        headers = {"Authorization": f"Bearer {self._token}"}
        data: Any = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        elif content is not None:
            data = content
            headers["Content-Type"] = "application/octet-stream"
            if length is not None:
                headers["Content-Length"] = str(length)
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return _Response(answer.status, answer.headers, answer.read())
        except urllib.error.HTTPError as error:
            raise _api_error(method, url, error) from None

    def _wait(self, kind: str, job: Dict[str, Any], location: str, poll: float, timeout: float) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while job["status"] not in _FINISHED:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{kind} job {job['id']} is still {job['status']} after {timeout} s")
            time.sleep(min(poll, left))
            job = self._get(location).object()
        if job["status"] in ("failed", "interrupted"):
            detail = job.get("error") or f"the job {job['status']}"
            problem = {
                "type": "about:blank",
                "title": "Internal Server Error",
                "status": 500,
                "detail": detail,
                "job": job,
            }
            raise ApiError(500, problem, f"{kind} job {job['id']} {job['status']}: {detail}")
        return job


def _segment(text: str) -> str:
    """``text`` as one URL path segment."""
    return urllib.parse.quote(str(text), safe="")


def _date_text(value: DateLike, name: str) -> str:
    if isinstance(value, _dt.datetime):
        return value.date().isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return value
    raise TypeError(f"{name} is a date or a YYYY-MM-DD string, not {type(value).__name__}")


def _timestamp(text: str) -> _dt.datetime:
    # Python before 3.11 does not read a trailing "Z".
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return _dt.datetime.fromisoformat(text)


def _metadata(document: Mapping[str, Any]) -> Dict[bytes, bytes]:
    return {b"stroom": json.dumps(document, sort_keys=True).encode("utf-8")}


def _forecast_table(document: Dict[str, Any], explain: bool = False) -> pa.Table:
    """One row per target and day of a RouteForecast or StationForecast
    (with the parts' columns when ``explain``)."""
    targets: List[Dict[str, Any]] = document.pop("targets")
    rows = []
    for target in targets:
        for row in target["forecasts"]:
            rows.append(
                {
                    **row,
                    "run_id": document["run_id"],
                    "target": target["target"],
                    "station": target["station"],
                    "model": target["model"],
                    "chosen": target.get("chosen"),
                    "cutoff": _dt.date.fromisoformat(target["cutoff"]),
                    "date": _dt.date.fromisoformat(row["date"]),
                    **(row.get("parts") or {}),
                }
            )
            rows[-1].pop("parts", None)
    schema = _EXPLAINED_SCHEMA if explain else _FORECAST_SCHEMA
    return pa.Table.from_pylist(rows, schema=schema.with_metadata(_metadata(document)))


def _scenario_table(document: Dict[str, Any]) -> pa.Table:
    """One row per station, variant and day of a Scenario."""
    targets: List[Dict[str, Any]] = document.pop("targets")
    rows = []
    for target in targets:
        for variant in ("baseline", "scenario"):
            for row in target[variant]:
                rows.append(
                    {
                        **row,
                        "run_id": document["run_id"],
                        "target": target["target"],
                        "role": target["role"],
                        "variant": variant,
                        "cutoff": _dt.date.fromisoformat(target["cutoff"]),
                        "date": _dt.date.fromisoformat(row["date"]),
                    }
                )
    return pa.Table.from_pylist(rows, schema=_SCENARIO_SCHEMA.with_metadata(_metadata(document)))


def _api_error(method: str, url: str, error: urllib.error.HTTPError) -> ApiError:
    status = error.code
    text = error.read().decode("utf-8", "replace")
    problem: Optional[Dict[str, Any]] = None
    try:
        parsed = json.loads(text)
        if isinstance(parsed, dict):
            problem = parsed
    except ValueError:
        pass
    if problem is None:
        # Not a problem document (a proxy in between, say): keep the text.
        problem = {"type": "about:blank", "title": error.reason, "status": status, "detail": text.strip()[:500]}
    path = urllib.parse.urlsplit(url).path
    title = problem.get("title") or error.reason
    detail = problem.get("detail") or title
    return ApiError(status, problem, f"{method} {path}: {status} {title}: {detail}")

