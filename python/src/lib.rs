//! `stroom._stroom`, the native module of the Python package `stroom`:
//! thin bindings over `stroom-pipeline` and the crates below it. Tables go
//! to pyarrow through the Arrow C stream interface (no row is converted);
//! every call that reads a store, fits models or serves releases the GIL
//! and runs on one shared Tokio runtime; Ctrl-C interrupts a long call;
//! errors become the exceptions below with the Rust message (file, line,
//! column and value for bad input).

// PyO3's macros expand to code that the workspace lints would flag.
#![allow(unreachable_pub, missing_debug_implementations)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, Int64Array, RecordBatch, RecordBatchIterator, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ffi_stream::FFI_ArrowArrayStream;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyString};
use stroom_core::{Cell, DEFAULT_BUFFER_RINGS, DEFAULT_ROUTE_RESOLUTION, Resolution};
use stroom_model::ModelKind;
use stroom_pipeline::{BacktestRun, BacktestSpec, ForecastRun, ForecastSpec, ModelOptions, PipelineError, Target};
use stroom_query::{Engine, QueryError, QuerySession, SeriesGranularity, Vintage};
use stroom_store::{ArrivalsIngest, DensityIngest, EmptyCounts, OnStored, StorageOptions, StoreError};

create_exception!(_stroom, StroomError, PyException, "Any error of stroom; the message names the cause.");
create_exception!(_stroom, StoreError_, StroomError, "Opening, reading or writing a store failed.");
create_exception!(
    _stroom,
    IngestError,
    StoreError_,
    "An input file is malformed: the message names file, line or row, column and value."
);
create_exception!(_stroom, QueryError_, StroomError, "A SQL statement could not be parsed, planned or run.");
create_exception!(
    _stroom,
    ModelError,
    StroomError,
    "A model or backtest parameter is invalid, or the series is too short."
);
create_exception!(
    _stroom,
    RouteError,
    StroomError,
    "A route, segment, station or target that does not exist, or a malformed one."
);

/// The runtime every call runs on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("stroom")
            .enable_all()
            .build()
            .expect("a Tokio runtime starts")
    })
}

fn is_input_error(error: &StoreError) -> bool {
    matches!(
        error,
        StoreError::NoInputFiles { .. }
            | StoreError::UnsupportedFile { .. }
            | StoreError::EmptyFile { .. }
            | StoreError::NoRows { .. }
            | StoreError::Columns { .. }
            | StoreError::ColumnType { .. }
            | StoreError::Field { .. }
            | StoreError::Csv { .. }
            | StoreError::Parquet { .. }
            | StoreError::CountOverflow { .. }
            | StoreError::ResolutionMismatch { .. }
    )
}

/// The exception of an error, with its whole chain once as the message.
fn to_py(error: PipelineError) -> PyErr {
    let text = error.text();
    match &error {
        PipelineError::Store(e) if is_input_error(e) => IngestError::new_err(text),
        PipelineError::Store(_) | PipelineError::Missing(_) => StoreError_::new_err(text),
        PipelineError::Query(QueryError::Store(e)) if is_input_error(e) => IngestError::new_err(text),
        PipelineError::Query(QueryError::Store(_) | QueryError::Delta { .. } | QueryError::Cluster { .. }) => {
            StoreError_::new_err(text)
        }
        PipelineError::Query(_) => QueryError_::new_err(text),
        PipelineError::Model(_) => ModelError::new_err(text),
        PipelineError::Route(_) | PipelineError::Core(_) => RouteError::new_err(text),
        _ => StroomError::new_err(text),
    }
}

/// Runs `work` on the runtime with the GIL released, checking for Ctrl-C
/// (and reporting `progress`) every 100 ms.
fn block_on<T, F>(py: Python<'_>, work: F, progress: Option<(&Arc<Progress>, &Bound<'_, PyAny>)>) -> PyResult<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T, PipelineError>> + Send + 'static,
{
    let (sender, receiver) = std::sync::mpsc::channel();
    let task = runtime().spawn(async move {
        let _ = sender.send(work.await);
    });
    let mut reported = (usize::MAX, usize::MAX);
    let mut receiver = receiver;
    loop {
        let (outcome, back) = py.detach(move || (receiver.recv_timeout(Duration::from_millis(100)), receiver));
        receiver = back;
        if let Some((counter, callback)) = progress {
            let now = (counter.done.load(Ordering::Relaxed), counter.total.load(Ordering::Relaxed));
            if now != reported && now.1 > 0 {
                reported = now;
                callback.call1(now)?;
            }
        }
        match outcome {
            Ok(result) => return result.map_err(to_py),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Err(interrupt) = py.check_signals() {
                    task.abort();
                    return Err(interrupt);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(StroomError::new_err("the call stopped without a result (a panic in stroom)"));
            }
        }
    }
}

/// Folds done and in all, written by the worker and read by the caller.
#[derive(Default)]
struct Progress {
    done: AtomicUsize,
    total: AtomicUsize,
}

/// Arrow data on its way to pyarrow: the object has `__arrow_c_stream__`.
#[pyclass(module = "stroom._stroom", frozen)]
struct ArrowStream {
    stream: std::sync::Mutex<Option<FFI_ArrowArrayStream>>,
}

#[pymethods]
impl ArrowStream {
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let stream = self
            .stream
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| PyValueError::new_err("the Arrow stream was consumed"))?;
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }
}

/// `batches` as a `pyarrow.Table`, without copying.
fn to_pyarrow(py: Python<'_>, schema: SchemaRef, batches: Vec<RecordBatch>) -> PyResult<Py<PyAny>> {
    let reader = RecordBatchIterator::new(batches.into_iter().map(Ok), schema);
    let stream = ArrowStream { stream: std::sync::Mutex::new(Some(FFI_ArrowArrayStream::new(Box::new(reader)))) };
    let pyarrow = py.import("pyarrow")?;
    let reader = pyarrow.getattr("RecordBatchReader")?.call_method1("from_stream", (stream,))?;
    Ok(reader.call_method0("read_all")?.unbind())
}

fn batch_to_pyarrow(py: Python<'_>, batch: RecordBatch) -> PyResult<Py<PyAny>> {
    to_pyarrow(py, batch.schema(), vec![batch])
}

fn json_to_py(py: Python<'_>, value: &serde_json::Value) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| StroomError::new_err(e.to_string()))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// A date from `datetime.date`, `datetime.datetime` (its date) or ISO text.
fn date_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<NaiveDate> {
    let text: String = if value.is_instance_of::<PyString>() {
        value.extract()?
    } else {
        value.call_method0("isoformat")?.extract()?
    };
    let day = text.get(..10).unwrap_or(&text);
    stroom_core::parse_date(day)
        .map_err(|_| PyValueError::new_err(format!("{name}={text:?} is not a date (YYYY-MM-DD)")))
}

fn dates_arg(values: Option<Vec<Bound<'_, PyAny>>>, name: &str) -> PyResult<Vec<NaiveDate>> {
    values.unwrap_or_default().iter().map(|v| date_arg(v, name)).collect()
}

/// A vintage from a version number, a time as text, or a `datetime`.
fn vintage_arg(value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vintage>> {
    let Some(value) = value else { return Ok(None) };
    if value.is_none() {
        return Ok(None);
    }
    if let Ok(version) = value.extract::<u64>() {
        return Ok(Some(Vintage::Version(version)));
    }
    let text: String = if value.is_instance_of::<PyString>() {
        value.extract()?
    } else {
        // A naive datetime is read as UTC, like the command line's --as-of.
        value.call_method0("isoformat")?.extract()?
    };
    let time = match stroom_core::parse_timestamp_micros(&text) {
        Ok(micros) => chrono::DateTime::from_timestamp_micros(micros),
        Err(_) => stroom_core::parse_date(&text).ok().map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc()),
    };
    time.map(|t| Some(Vintage::AsOf(t))).ok_or_else(|| {
        PyValueError::new_err(format!(
            "as_of={text:?} is neither a table version nor a time (RFC 3339, or YYYY-MM-DD[THH:MM:SS] in UTC)"
        ))
    })
}

fn path_text(path: PathBuf) -> String {
    path.to_string_lossy().into_owned()
}

fn routes_arg(folder: Option<PathBuf>) -> PyResult<Vec<stroom_core::Route>> {
    stroom_pipeline::load_routes(folder.as_deref()).map_err(to_py)
}

fn models_arg(models: Option<Vec<String>>) -> PyResult<Option<Vec<ModelKind>>> {
    models
        .map(|names| {
            if names.is_empty() {
                return Err(ModelError::new_err("models=[] names no model"));
            }
            ModelKind::parse_list(&names.join(",")).map_err(|e| to_py(e.into()))
        })
        .transpose()
}

/// A stroom store: Delta tables in a folder or under an `s3://` prefix.
#[pyclass(module = "stroom._stroom", frozen)]
struct Store {
    store: stroom_store::Store,
    engine: Engine,
    /// The location as given.
    url: String,
}

impl Store {
    fn engine_of(cluster: Option<String>) -> Engine {
        cluster.map_or(Engine::Local, Engine::Cluster)
    }
}

#[pymethods]
impl Store {
    /// Opens the existing store at `url`.
    #[new]
    #[pyo3(signature = (url, storage_options=None, cluster=None))]
    fn new(
        py: Python<'_>,
        url: PathBuf,
        storage_options: Option<BTreeMap<String, String>>,
        cluster: Option<String>,
    ) -> PyResult<Self> {
        let url = path_text(url);
        let options: StorageOptions = storage_options.unwrap_or_default().into_iter().collect();
        let location = url.clone();
        let store =
            block_on(py, async move { Ok(stroom_store::Store::open_existing(&location, options).await?) }, None)?;
        Ok(Self { store, engine: Self::engine_of(cluster), url })
    }

    /// A store at `url` for writing: ingest creates its tables.
    #[classmethod]
    #[pyo3(signature = (url, storage_options=None, cluster=None))]
    fn create(
        _class: &Bound<'_, pyo3::types::PyType>,
        url: PathBuf,
        storage_options: Option<BTreeMap<String, String>>,
        cluster: Option<String>,
    ) -> PyResult<Self> {
        let url = path_text(url);
        let options: StorageOptions = storage_options.unwrap_or_default().into_iter().collect();
        let store = stroom_store::Store::create(&url, options).map_err(|e| to_py(e.into()))?;
        Ok(Self { store, engine: Self::engine_of(cluster), url })
    }

    #[getter]
    fn url(&self) -> String {
        self.url.clone()
    }

    fn __repr__(&self) -> String {
        format!("stroom.Store({:?})", self.url)
    }

    /// Every table: table, version, rows, first, last.
    fn tables(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let store = self.store.clone();
        let summaries = block_on(py, async move { Ok(store.summaries().await?) }, None)?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("table", DataType::Utf8, false),
            Field::new("version", DataType::Int64, false),
            Field::new("rows", DataType::Int64, false),
            Field::new("first", DataType::Utf8, true),
            Field::new("last", DataType::Utf8, true),
        ]));
        let columns: Vec<Arc<dyn Array>> = vec![
            Arc::new(StringArray::from_iter_values(summaries.iter().map(|s| s.table.as_str()))),
            Arc::new(Int64Array::from_iter_values(summaries.iter().map(|s| s.version as i64))),
            Arc::new(Int64Array::from_iter_values(summaries.iter().map(|s| s.rows as i64))),
            Arc::new(StringArray::from_iter(summaries.iter().map(|s| s.first.as_deref()))),
            Arc::new(StringArray::from_iter(summaries.iter().map(|s| s.last.as_deref()))),
        ];
        let batch = RecordBatch::try_new(schema, columns).map_err(|e| to_py(e.into()))?;
        batch_to_pyarrow(py, batch)
    }

    /// The latest version of each table.
    fn versions(&self, py: Python<'_>) -> PyResult<BTreeMap<String, u64>> {
        let store = self.store.clone();
        block_on(
            py,
            async move {
                let mut versions = BTreeMap::new();
                for name in stroom_store::TableName::ALL {
                    if let Some(version) = store.table(name).await?.and_then(|t| t.version()) {
                        versions.insert(name.as_str().to_owned(), version as u64);
                    }
                }
                Ok(versions)
            },
            None,
        )
    }

    /// Runs a read-only SQL query on the store (as it was at `as_of`).
    #[pyo3(signature = (query, as_of=None))]
    fn sql(&self, py: Python<'_>, query: String, as_of: Option<Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let vintage = vintage_arg(as_of.as_ref())?;
        let (store, engine) = (self.store.clone(), self.engine.clone());
        let (schema, batches) = block_on(
            py,
            async move {
                let session = QuerySession::open_on(&store, vintage, &engine).await?;
                let frame = session.sql(&query).await?;
                let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
                let batches = frame.collect().await?;
                Ok((schema, batches))
            },
            None,
        )?;
        to_pyarrow(py, schema, batches)
    }

    /// A route's density per segment (or around each station) per day or hour.
    #[pyo3(signature = (route, start, end, level="segment", hourly=false, routes=None))]
    fn series(
        &self,
        py: Python<'_>,
        route: String,
        start: Bound<'_, PyAny>,
        end: Bound<'_, PyAny>,
        level: &str,
        hourly: bool,
        routes: Option<PathBuf>,
    ) -> PyResult<Py<PyAny>> {
        let (from, to) = (date_arg(&start, "start")?, date_arg(&end, "end")?);
        if from >= to {
            return Err(PyValueError::new_err(format!("start={from} must be before end={to}")));
        }
        let station = match level {
            "segment" => false,
            "station" => true,
            other => return Err(PyValueError::new_err(format!("level={other:?}: use \"segment\" or \"station\""))),
        };
        let route = stroom_pipeline::find_route(&routes_arg(routes)?, &route).map_err(to_py)?.clone();
        let granularity = if hourly { SeriesGranularity::Hour } else { SeriesGranularity::Day };
        let (store, engine) = (self.store.clone(), self.engine.clone());
        let batches = block_on(
            py,
            async move {
                let session = QuerySession::open_on(&store, None, &engine).await?;
                let resolution = Resolution::new(i64::from(DEFAULT_ROUTE_RESOLUTION))?;
                Ok(if station {
                    session
                        .station_density_series(&route, resolution, DEFAULT_BUFFER_RINGS, from, to, granularity)
                        .await?
                } else {
                    let cells = route.cells(resolution, DEFAULT_BUFFER_RINGS)?;
                    session.segment_series(&cells, from, to, granularity).await?
                })
            },
            None,
        )?;
        let schema = batches.first().map(|b| b.schema()).unwrap_or_else(|| Arc::new(series_schema(hourly)));
        to_pyarrow(py, schema, batches)
    }

    /// How unusual a day's density is on a route (the API's nowcast), as a dict.
    #[pyo3(signature = (route, date=None, cells=50, routes=None))]
    fn nowcast(
        &self,
        py: Python<'_>,
        route: String,
        date: Option<Bound<'_, PyAny>>,
        cells: usize,
        routes: Option<PathBuf>,
    ) -> PyResult<Py<PyAny>> {
        let date = date.filter(|d| !d.is_none()).map(|d| date_arg(&d, "date")).transpose()?;
        let routes = routes_arg(routes)?;
        let route = stroom_pipeline::find_route(&routes, &route).map_err(to_py)?.clone();
        let (store, engine) = (self.store.clone(), self.engine.clone());
        let nowcast =
            block_on(py, async move { stroom_pipeline::nowcast(&store, &engine, &route, date, cells).await }, None)?;
        let text = serde_json::to_string(&nowcast).map_err(|e| StroomError::new_err(e.to_string()))?;
        Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
    }

    /// A cell's density (the sum over its descendants at the store's
    /// resolution) per day or hour.
    #[pyo3(signature = (cell, start, end, hourly=false))]
    fn cell_series(
        &self,
        py: Python<'_>,
        cell: Bound<'_, PyAny>,
        start: Bound<'_, PyAny>,
        end: Bound<'_, PyAny>,
        hourly: bool,
    ) -> PyResult<Py<PyAny>> {
        let cell = if let Ok(id) = cell.extract::<u64>() {
            Cell::from_u64(id).map_err(|e| RouteError::new_err(e.to_string()))?
        } else {
            let text: String = cell.extract()?;
            text.parse::<Cell>().map_err(|e| RouteError::new_err(e.to_string()))?
        };
        let (from, to) = (date_arg(&start, "start")?, date_arg(&end, "end")?);
        if from >= to {
            return Err(PyValueError::new_err(format!("start={from} must be before end={to}")));
        }
        let (store, engine) = (self.store.clone(), self.engine.clone());
        let series = block_on(
            py,
            async move { stroom_pipeline::cell_series(&store, &engine, cell, from, to, hourly).await },
            None,
        )?;
        to_pyarrow(py, series.schema, series.batches)
    }

    /// A station's official daily arrivals.
    #[pyo3(signature = (station, start=None, end=None))]
    fn arrivals(
        &self,
        py: Python<'_>,
        station: String,
        start: Option<Bound<'_, PyAny>>,
        end: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let from = start.map(|s| date_arg(&s, "start")).transpose()?.unwrap_or(NaiveDate::MIN);
        let to = end.map(|e| date_arg(&e, "end")).transpose()?.unwrap_or(NaiveDate::MAX);
        let (from, to) = (from.max(NaiveDate::from_ymd_opt(1, 1, 1).expect("a date")), to.min(far_future()));
        let (store, engine) = (self.store.clone(), self.engine.clone());
        let batches = block_on(
            py,
            async move {
                let session = QuerySession::open_on(&store, None, &engine).await?;
                Ok(session.arrivals_series(&station, from, to).await?)
            },
            None,
        )?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("date", DataType::Date32, false),
            Field::new("count", DataType::Int32, false),
        ]));
        let schema = batches.first().map(|b| b.schema()).unwrap_or(schema);
        to_pyarrow(py, schema, batches)
    }
}

fn far_future() -> NaiveDate {
    NaiveDate::from_ymd_opt(9999, 12, 31).expect("a date")
}

/// The columns of an empty series.
fn series_schema(hourly: bool) -> Schema {
    let time = if hourly {
        DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None)
    } else {
        DataType::Date32
    };
    Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("time", time, false),
        Field::new("devices", DataType::Int64, false),
        Field::new("cell_hours", DataType::Int64, false),
    ])
}

/// A finished backtest.
#[pyclass(module = "stroom._stroom", frozen)]
struct BacktestResult {
    run: BacktestRun,
}

#[pymethods]
impl BacktestResult {
    #[getter]
    fn run_id(&self) -> String {
        self.run.run_id.clone()
    }

    /// Every fold's forecasts with actuals (the CLI's forecasts.parquet).
    #[getter]
    fn forecasts(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        batch_to_pyarrow(py, self.run.forecasts_batch().map_err(to_py)?)
    }

    /// Metrics per model over all horizons (horizon null) and per horizon.
    #[getter]
    fn metrics(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        batch_to_pyarrow(py, self.run.metrics_batch().map_err(to_py)?)
    }

    /// The daily series the models read: the target and each upstream signal.
    #[getter]
    fn series(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        batch_to_pyarrow(py, self.run.series_batch().map_err(to_py)?)
    }

    /// The run's metadata (run.json).
    #[getter]
    fn run(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        json_to_py(py, &self.run.run)
    }

    /// Writes forecasts.parquet, metrics.csv, series.csv and run.json.
    fn write(&self, py: Python<'_>, folder: PathBuf) -> PyResult<()> {
        py.detach(|| self.run.write_files(&folder)).map_err(to_py)
    }

    fn __repr__(&self) -> String {
        format!(
            "stroom.BacktestResult(run_id={:?}, target={:?}, folds={})",
            self.run.run_id,
            self.run.target,
            self.run.result.cutoffs.len()
        )
    }
}

/// A finished forecast run.
#[pyclass(module = "stroom._stroom", frozen)]
struct ForecastResult {
    run: ForecastRun,
}

#[pymethods]
impl ForecastResult {
    #[getter]
    fn run_id(&self) -> String {
        self.run.run_id.clone()
    }

    /// The forecast of every target, as the store's forecasts table holds it.
    #[getter]
    fn forecasts(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        batch_to_pyarrow(py, self.run.forecasts_batch().map_err(to_py)?)
    }

    #[getter]
    fn run(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        json_to_py(py, &self.run.run)
    }

    fn __repr__(&self) -> String {
        let targets: Vec<String> = self.run.targets.iter().map(|t| t.target.to_string()).collect();
        format!("stroom.ForecastResult(run_id={:?}, targets={targets:?})", self.run.run_id)
    }
}

#[allow(clippy::too_many_arguments)]
fn model_options(
    horizon: usize,
    calibration_origins: usize,
    calibration_step: usize,
    window: usize,
    holidays: Option<Vec<Bound<'_, PyAny>>>,
) -> PyResult<ModelOptions> {
    Ok(ModelOptions {
        horizon,
        calibration_origins,
        calibration_step,
        window,
        holidays: dates_arg(holidays, "holidays")?,
    })
}

/// Backtests a target (`station:ID` or `segment:ROUTE/SEGMENT`).
#[pyfunction]
#[pyo3(signature = (
    store, target, horizon=14, folds=20, step=7, models=None, vintage=false, record=true, routes=None,
    calibration_origins=28, calibration_step=6, window=7, holidays=None, progress=None
))]
#[allow(clippy::too_many_arguments)]
fn backtest(
    py: Python<'_>,
    store: &Store,
    target: &str,
    horizon: usize,
    folds: usize,
    step: usize,
    models: Option<Vec<String>>,
    vintage: bool,
    record: bool,
    routes: Option<PathBuf>,
    calibration_origins: usize,
    calibration_step: usize,
    window: usize,
    holidays: Option<Vec<Bound<'_, PyAny>>>,
    progress: Option<Bound<'_, PyAny>>,
) -> PyResult<BacktestResult> {
    let target: Target = target.parse().map_err(to_py)?;
    let mut spec = BacktestSpec::new(target);
    if let Some(models) = models_arg(models)? {
        spec.models = models;
    }
    spec.folds = folds;
    spec.step = step;
    spec.on_vintages = vintage;
    spec.options = model_options(horizon, calibration_origins, calibration_step, window, holidays)?;
    spec.check().map_err(to_py)?;
    let routes = routes_arg(routes)?;
    let (handle, engine) = (store.store.clone(), store.engine.clone());
    let counter = Arc::new(Progress::default());
    let worker_counter = counter.clone();
    let run = block_on(
        py,
        async move {
            let report = move |done: usize, total: usize| {
                worker_counter.total.store(total, Ordering::Relaxed);
                worker_counter.done.fetch_max(done, Ordering::Relaxed);
            };
            let run = stroom_pipeline::backtest(&handle, &engine, &routes, &spec, &report).await?;
            if record {
                run.record(&handle).await?;
            }
            Ok(run)
        },
        progress.as_ref().filter(|p| !p.is_none()).map(|p| (&counter, p)),
    )?;
    Ok(BacktestResult { run })
}

/// Forecasts route destinations and targets from their last known day.
#[pyfunction]
#[pyo3(signature = (
    store, route=None, target=None, model="auto", horizon=14, record=true, routes=None,
    calibration_origins=28, calibration_step=6, window=7, holidays=None
))]
#[allow(clippy::too_many_arguments)]
fn forecast(
    py: Python<'_>,
    store: &Store,
    route: Option<Vec<String>>,
    target: Option<Vec<String>>,
    model: &str,
    horizon: usize,
    record: bool,
    routes: Option<PathBuf>,
    calibration_origins: usize,
    calibration_step: usize,
    window: usize,
    holidays: Option<Vec<Bound<'_, PyAny>>>,
) -> PyResult<ForecastResult> {
    let targets =
        target.unwrap_or_default().iter().map(|t| t.parse::<Target>()).collect::<Result<Vec<_>, _>>().map_err(to_py)?;
    let spec = ForecastSpec {
        routes: route.unwrap_or_default(),
        targets,
        model: ModelKind::parse(model).map_err(|e| to_py(e.into()))?,
        options: model_options(horizon, calibration_origins, calibration_step, window, holidays)?,
    };
    spec.options.params(vec![spec.model]).map_err(to_py)?;
    let routes = routes_arg(routes)?;
    let (handle, engine) = (store.store.clone(), store.engine.clone());
    let run = block_on(
        py,
        async move {
            let run = stroom_pipeline::forecast(&handle, &engine, &routes, &spec).await?;
            if record {
                run.record(&handle).await?;
            }
            Ok(run)
        },
        None,
    )?;
    Ok(ForecastResult { run })
}

/// Simulates provider files with ground truth (like `stroom simulate`).
#[pyfunction]
#[pyo3(signature = (
    out, start="2023-01-01".to_owned(), days=730, seed=42, resolution=7, background="corridor", scale=1.0,
    buffer=2, k=15, form="cell", synthetic_channel=false, closure=true, routes=None
))]
#[allow(clippy::too_many_arguments)]
fn simulate(
    py: Python<'_>,
    out: PathBuf,
    start: String,
    days: u32,
    seed: u64,
    resolution: u8,
    background: &str,
    scale: f64,
    buffer: u32,
    k: u32,
    form: &str,
    synthetic_channel: bool,
    closure: bool,
    routes: Option<PathBuf>,
) -> PyResult<Py<PyAny>> {
    let start = stroom_core::parse_date(&start)
        .map_err(|_| PyValueError::new_err(format!("start={start:?} is not a date (YYYY-MM-DD)")))?;
    let mut params = stroom_sim::SimParams {
        start,
        days,
        resolution,
        buffer_rings: buffer,
        seed,
        background: match background {
            "corridor" => stroom_sim::Background::Corridor,
            "bbox" => stroom_sim::Background::Bbox,
            other => return Err(PyValueError::new_err(format!("background={other:?}: use \"corridor\" or \"bbox\""))),
        },
        scale,
        k,
        provider_form: match form {
            "cell" => stroom_sim::ProviderForm::Cell,
            "latlon" => stroom_sim::ProviderForm::LatLon,
            other => return Err(PyValueError::new_err(format!("form={other:?}: use \"cell\" or \"latlon\""))),
        },
        ..stroom_sim::SimParams::default()
    };
    if !closure {
        params.flow.closure = None;
    }
    let routes = routes_arg(routes)?;
    let report =
        py.detach(|| stroom_pipeline::simulate(&params, &routes, synthetic_channel, &out, &|_| {})).map_err(to_py)?;
    let value = serde_json::to_value(&report).map_err(|e| StroomError::new_err(e.to_string()))?;
    json_to_py(py, &value)
}

/// Ingests provider density files (CSV or Parquet files or folders).
#[pyfunction]
#[pyo3(signature = (store, paths, resolution=7, k=15, add_to_stored=false, replace=false))]
fn ingest_density(
    py: Python<'_>,
    store: &Store,
    paths: Bound<'_, PyAny>,
    resolution: u8,
    k: u32,
    add_to_stored: bool,
    replace: bool,
) -> PyResult<Py<PyAny>> {
    let paths: Vec<PathBuf> = match paths.extract::<PathBuf>() {
        Ok(one) => vec![one],
        Err(_) => paths.extract()?,
    };
    let resolution = Resolution::new(i64::from(resolution)).map_err(|e| to_py(e.into()))?;
    let on_stored = match (add_to_stored, replace) {
        (true, true) => return Err(PyValueError::new_err("add_to_stored and replace exclude each other")),
        (true, false) => OnStored::Add,
        (false, true) => OnStored::Replace,
        (false, false) => OnStored::Refuse,
    };
    let ingest = DensityIngest { on_stored, ..DensityIngest::new(resolution, k).map_err(|e| to_py(e.into()))? };
    let handle = store.store.clone();
    let report = block_on(py, async move { Ok(ingest.run(&handle, &paths, &|_| {}).await?) }, None)?;
    let sources: Vec<serde_json::Value> = report
        .sources
        .iter()
        .map(|s| {
            serde_json::json!({
                "path": s.path.to_string_lossy(), "sha256": s.sha256, "rows": s.rows,
                "already_ingested": s.already_ingested,
            })
        })
        .collect();
    let value = serde_json::json!({
        "rows_read": report.rows_read,
        "cell_hours": report.cell_hours,
        "cells": report.cells,
        "suppressed": report.suppressed,
        "rows_written": report.rows_written,
        "replaced": report.replaced,
        "held": report.held,
        "days": report.days,
        "version_before": report.version_before,
        "version": report.version,
        "sources": sources,
    });
    json_to_py(py, &value)
}

/// Ingests an official arrivals CSV (merged by station and date).
#[pyfunction]
#[pyo3(signature = (store, path, station=None, date_column=None, count_column=None, station_column=None, empty="error"))]
#[allow(clippy::too_many_arguments)]
fn ingest_arrivals(
    py: Python<'_>,
    store: &Store,
    path: PathBuf,
    station: Option<String>,
    date_column: Option<String>,
    count_column: Option<String>,
    station_column: Option<String>,
    empty: &str,
) -> PyResult<Py<PyAny>> {
    let empty = match empty {
        "error" => EmptyCounts::Error,
        "zero" => EmptyCounts::Zero,
        other => return Err(PyValueError::new_err(format!("empty={other:?}: use \"error\" or \"zero\""))),
    };
    let ingest = ArrivalsIngest { station, date_column, station_column, count_column, empty };
    let handle = store.store.clone();
    let report = block_on(py, async move { Ok(ingest.run(&handle, &path).await?) }, None)?;
    let value = serde_json::json!({
        "path": report.path.to_string_lossy(),
        "sha256": report.sha256,
        "already_ingested": report.already_ingested,
        "rows_read": report.rows_read,
        "rows_loaded": report.rows_loaded,
        "zero_filled": report.zero_filled,
        "unknown_trailing": report.unknown_trailing,
        "new_rows": report.new_rows,
        "revised_rows": report.revised_rows,
        "stations": report.stations,
        "first_date": report.first_date.map(|d| d.to_string()),
        "last_date": report.last_date.map(|d| d.to_string()),
        "version_before": report.version_before,
        "version": report.version,
    });
    json_to_py(py, &value)
}

/// One row per segment of every route.
#[pyfunction]
#[pyo3(signature = (folder=None))]
fn routes(py: Python<'_>, folder: Option<PathBuf>) -> PyResult<Py<PyAny>> {
    let routes = routes_arg(folder)?;
    let resolution = Resolution::new(i64::from(DEFAULT_ROUTE_RESOLUTION)).map_err(|e| to_py(e.into()))?;
    let mut rows: Vec<[String; 7]> = Vec::new();
    let mut cells: Vec<i64> = Vec::new();
    for route in &routes {
        let route_cells = route.cells(resolution, DEFAULT_BUFFER_RINGS).map_err(|e| to_py(e.into()))?;
        for (segment, segment_cells) in route.segments.iter().zip(&route_cells.segments) {
            rows.push([
                route.id.clone(),
                route.name.clone(),
                segment.id.clone(),
                segment.mode.as_str().to_owned(),
                segment.from.clone(),
                segment.to.clone(),
                route.destination().id.clone(),
            ]);
            cells.push(segment_cells.cells.len() as i64);
        }
    }
    let names = ["route", "route_name", "segment", "mode", "from", "to", "destination"];
    let mut fields: Vec<Field> = names.iter().map(|n| Field::new(*n, DataType::Utf8, false)).collect();
    fields.insert(6, Field::new("cells", DataType::Int64, false));
    let mut columns: Vec<Arc<dyn Array>> = (0..names.len())
        .map(|i| Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r[i].as_str()))) as Arc<dyn Array>)
        .collect();
    columns.insert(6, Arc::new(Int64Array::from(cells)));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| to_py(e.into()))?;
    batch_to_pyarrow(py, batch)
}

/// A route as GeoJSON: stations, segments and cell polygons.
#[pyfunction]
#[pyo3(signature = (route, folder=None))]
fn route_geojson(py: Python<'_>, route: &str, folder: Option<PathBuf>) -> PyResult<Py<PyAny>> {
    let routes = routes_arg(folder)?;
    let route = stroom_pipeline::find_route(&routes, route).map_err(to_py)?;
    let resolution = Resolution::new(i64::from(DEFAULT_ROUTE_RESOLUTION)).map_err(|e| to_py(e.into()))?;
    let value = stroom_pipeline::route_geojson(route, resolution, DEFAULT_BUFFER_RINGS).map_err(to_py)?;
    json_to_py(py, &value)
}

/// The shipped real UK small-boat arrivals as CSV text.
#[pyfunction]
fn real_uk_arrivals_csv() -> &'static str {
    stroom_pipeline::UK_ARRIVALS
}

/// Adds a key to a key file; returns its bearer token (shown only here).
#[pyfunction]
#[pyo3(signature = (keys, role, routes=None, expires=None))]
fn create_key(keys: PathBuf, role: &str, routes: Option<Vec<String>>, expires: Option<String>) -> PyResult<String> {
    let role: stroom_api::Role = role.parse().map_err(|e: String| PyValueError::new_err(e))?;
    let now = chrono::Utc::now();
    let created = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let expires = expires
        .map(|text| stroom_api::expiry(&text, now).map_err(PyValueError::new_err))
        .transpose()?
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let routes = routes.map(|r| r.into_iter().collect::<BTreeSet<String>>());
    let (token, _) = stroom_api::KeyFile::create_key(&keys, role, routes, created, expires)
        .map_err(|e| StroomError::new_err(stroom_pipeline::chain_text(&e)))?;
    Ok(token)
}

/// The REST API on loopback, in a thread of its own (`stroom serve`).
#[pyclass(module = "stroom._stroom")]
struct Server {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

#[pymethods]
impl Server {
    #[new]
    #[pyo3(signature = (store, keys, addr="127.0.0.1:0".to_owned(), audit=None, storage_options=None, routes=None, capacities=None))]
    fn new(
        py: Python<'_>,
        store: PathBuf,
        keys: PathBuf,
        addr: String,
        audit: Option<PathBuf>,
        storage_options: Option<BTreeMap<String, String>>,
        routes: Option<PathBuf>,
        capacities: Option<PathBuf>,
    ) -> PyResult<Self> {
        let location = path_text(store);
        let capacities = match capacities {
            Some(path) => stroom_pipeline::Capacities::load(&path)
                .map_err(|e| StroomError::new_err(stroom_pipeline::chain_text(&e)))?,
            None => stroom_pipeline::Capacities::default(),
        };
        let options: StorageOptions = storage_options.unwrap_or_default().into_iter().collect();
        let routes = routes_arg(routes)?;
        let key_file =
            stroom_api::KeyFile::load(&keys).map_err(|e| StroomError::new_err(stroom_pipeline::chain_text(&e)))?;
        let addr: std::net::SocketAddr =
            addr.parse().map_err(|e| PyValueError::new_err(format!("addr={addr:?} is not HOST:PORT: {e}")))?;
        {
            let (location, options) = (location.clone(), options.clone());
            block_on(
                py,
                async move { Ok(stroom_store::Store::open_existing(&location, options).await.map(|_| ())?) },
                None,
            )?;
        }
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<String, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("stroom-server".into())
            .spawn(move || -> Result<(), String> {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind(addr).await {
                        Ok(listener) => listener,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("listening on {addr}: {e}")));
                            return Ok(());
                        }
                    };
                    let local = listener.local_addr().map_err(|e| e.to_string())?;
                    let _ = ready_tx.send(Ok(format!("http://{local}")));
                    let backend = Arc::new(
                        stroom_pipeline::StoreBackend::new(location, options, Engine::Local, routes)
                            .with_capacities(capacities, stroom_pipeline::DEFAULT_ALERT_LEVEL),
                    );
                    let config = stroom_api::ApiConfig {
                        keys: key_file,
                        keys_file: Some(keys),
                        audit_log: audit,
                        ..stroom_api::ApiConfig::default()
                    };
                    stroom_api::serve(listener, backend, config, async move {
                        let _ = stop_rx.await;
                    })
                    .await
                    .map_err(|e| stroom_pipeline::chain_text(&e))
                })
            })
            .map_err(|e| StroomError::new_err(format!("starting the server's thread: {e}")))?;
        let url = py
            .detach(move || ready_rx.recv())
            .map_err(|_| StroomError::new_err("the server stopped before listening"))?
            .map_err(StroomError::new_err)?;
        Ok(Self { url, stop: Some(stop_tx), thread: Some(thread) })
    }

    /// `http://127.0.0.1:PORT`.
    #[getter]
    fn url(&self) -> String {
        self.url.clone()
    }

    /// Stops serving: finishes the requests in flight, then returns.
    fn stop(&mut self, py: Python<'_>) -> PyResult<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let outcome = py.detach(|| thread.join());
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(problem)) => return Err(StroomError::new_err(problem)),
                Err(_) => return Err(StroomError::new_err("the server's thread panicked")),
            }
        }
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("stroom.Server({:?})", self.url)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[pymodule]
fn _stroom(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("StroomError", py.get_type::<StroomError>())?;
    m.add("StoreError", py.get_type::<StoreError_>())?;
    m.add("IngestError", py.get_type::<IngestError>())?;
    m.add("QueryError", py.get_type::<QueryError_>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add("RouteError", py.get_type::<RouteError>())?;
    m.add_class::<Store>()?;
    m.add_class::<BacktestResult>()?;
    m.add_class::<ForecastResult>()?;
    m.add_class::<Server>()?;
    m.add_class::<ArrowStream>()?;
    m.add_function(wrap_pyfunction!(backtest, m)?)?;
    m.add_function(wrap_pyfunction!(forecast, m)?)?;
    m.add_function(wrap_pyfunction!(simulate, m)?)?;
    m.add_function(wrap_pyfunction!(ingest_density, m)?)?;
    m.add_function(wrap_pyfunction!(ingest_arrivals, m)?)?;
    m.add_function(wrap_pyfunction!(routes, m)?)?;
    m.add_function(wrap_pyfunction!(route_geojson, m)?)?;
    m.add_function(wrap_pyfunction!(real_uk_arrivals_csv, m)?)?;
    m.add_function(wrap_pyfunction!(create_key, m)?)?;
    Ok(())
}
