//! Reading provider files (CSV or Parquet) row by row, with every value
//! checked and every error located by file, row and column.
//!
//! CSV goes through the `csv` crate, its errors located by line
//! ([`Location::Line`]); Parquet through the arrow reader, its errors
//! located by row ([`Location::Row`]). The cell of each exact coordinate
//! pair is memoised per thread (`PointMemo`): provider areas repeat every
//! hour, usually in the same order, so a lookup first reads the few points
//! after the previous one, then a hash index.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, UInt64Type};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::{Digest, Sha256};
use stroom_core::{Cell, Resolution, hour_floor_micros, parse_timestamp_micros};

use crate::{Location, StoreError};

/// The two column layouts a density file may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `ts,lat,lon,count` (`lng` is accepted for `lon`).
    LatLon { ts: usize, lat: usize, lon: usize, count: usize },
    /// `ts,cell,count`, the cell as a hex string or an integer.
    Cell { ts: usize, cell: usize, count: usize },
}

const EXPECTED_DENSITY: &str = "either ts,lat,lon,count or ts,cell,count";

impl Layout {
    fn detect(path: &Path, names: &[String]) -> Result<Self, StoreError> {
        let normalised: Vec<String> = names.iter().map(|n| n.trim().to_ascii_lowercase()).collect();
        let find = |wanted: &[&str]| normalised.iter().position(|n| wanted.contains(&n.as_str()));
        let columns_error = |problem: String| StoreError::Columns {
            path: path.to_owned(),
            problem,
            found: quoted(&names.join(",")),
            expected: EXPECTED_DENSITY.into(),
        };
        for (i, name) in normalised.iter().enumerate() {
            if normalised[..i].contains(name) {
                return Err(columns_error(format!("column '{}' appears twice", quoted(name))));
            }
        }
        let wanted: &[&str] =
            if find(&["cell"]).is_some() { &["ts", "cell", "count"] } else { &["ts", "lat", "lon", "count"] };
        let known = |n: &str| wanted.contains(&n) || (n == "lng" && wanted.contains(&"lon"));
        if let Some(extra) = normalised.iter().find(|n| !known(n)) {
            return Err(columns_error(format!("unexpected column '{}'", quoted(extra))));
        }
        let require = |name: &str, aliases: &[&str]| {
            find(aliases).ok_or_else(|| columns_error(format!("missing column '{name}'")))
        };
        let ts = require("ts", &["ts"])?;
        let count = require("count", &["count"])?;
        if wanted.contains(&"cell") {
            Ok(Self::Cell { ts, cell: require("cell", &["cell"])?, count })
        } else {
            Ok(Self::LatLon { ts, lat: require("lat", &["lat"])?, lon: require("lon", &["lon", "lng"])?, count })
        }
    }

    fn names(self) -> Vec<(&'static str, usize)> {
        match self {
            Self::LatLon { ts, lat, lon, count } => vec![("ts", ts), ("lat", lat), ("lon", lon), ("count", count)],
            Self::Cell { ts, cell, count } => vec![("ts", ts), ("cell", cell), ("count", count)],
        }
    }
}

/// The files to read: each path itself, or the `.csv` and `.parquet` files
/// under a folder (recursively, hidden entries skipped), in name order.
pub(crate) fn list_input_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, StoreError> {
    let mut files = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|source| StoreError::Io { path: path.clone(), source })?;
        if metadata.is_dir() {
            let before = files.len();
            collect_folder(path, &mut files)?;
            if files.len() == before {
                return Err(StoreError::NoInputFiles { path: path.clone() });
            }
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn collect_folder(folder: &Path, files: &mut Vec<PathBuf>) -> Result<(), StoreError> {
    let io = |source| StoreError::Io { path: folder.to_owned(), source };
    let mut entries: Vec<_> = std::fs::read_dir(folder).map_err(io)?.collect::<Result<_, _>>().map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_folder(&path, files)?;
        } else if input_kind(&path).is_some() {
            files.push(path);
        }
    }
    Ok(())
}

/// What a provider file holds, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputKind {
    /// `.csv`, or compressed: `.csv.gz`, `.csv.zst`.
    Csv,
    /// `.parquet`, with any codec inside.
    Parquet,
}

/// The kind of a provider file from its name; `None` for other files.
pub(crate) fn input_kind(path: &Path) -> Option<InputKind> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".parquet") {
        Some(InputKind::Parquet)
    } else if [".csv", ".csv.gz", ".csv.gzip", ".csv.zst", ".csv.zstd"].iter().any(|e| name.ends_with(e)) {
        Some(InputKind::Csv)
    } else {
        None
    }
}

/// A CSV reader over a provider file, and whether the file is compressed.
pub(crate) struct CsvInput {
    pub(crate) reader: csv::Reader<Box<dyn Read + Send>>,
    pub(crate) compressed: bool,
}

/// Opens a CSV file: gzip (one member or several, as `cat a.gz b.gz`
/// makes) and zstd are decompressed as the file is read, recognised by
/// their first bytes whatever the file is called. The delimiter is a comma,
/// unless the first line has no comma but a semicolon or a tab (the
/// exports of spreadsheets set to a decimal-comma locale): then that. Line
/// numbers count the decompressed text's lines, the header being line 1.
pub(crate) fn open_csv(path: &Path) -> Result<CsvInput, StoreError> {
    use std::io::{BufRead, Seek, SeekFrom};
    let io = |source| StoreError::Io { path: path.to_owned(), source };
    let mut file = File::open(path).map_err(io)?;
    let mut magic = [0u8; 4];
    let mut filled = 0;
    while filled < magic.len() {
        match file.read(&mut magic[filled..]).map_err(io)? {
            0 => break,
            n => filled += n,
        }
    }
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let buffered = BufReader::with_capacity(1 << 20, file);
    let (inner, compressed): (Box<dyn Read + Send>, bool) = match &magic[..filled] {
        [0x1f, 0x8b, ..] => (Box::new(flate2::bufread::MultiGzDecoder::new(buffered)), true),
        [0x28, 0xb5, 0x2f, 0xfd] => (Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(io)?), true),
        _ => (Box::new(buffered), false),
    };
    let mut text = BufReader::with_capacity(1 << 20, inner);
    let head = text.fill_buf().map_err(io)?;
    let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let delimiter = if first_line.contains(&b',') {
        b','
    } else if first_line.contains(&b';') {
        b';'
    } else if first_line.contains(&b'\t') {
        b'\t'
    } else {
        b','
    };
    let reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .delimiter(delimiter)
        .from_reader(Box::new(text) as Box<dyn Read + Send>);
    Ok(CsvInput { reader, compressed })
}

/// At most this many characters of a bad value are quoted in an error.
const QUOTED_CHARS: usize = 64;

/// A value as an error quotes it: whole when short, else its first
/// [`QUOTED_CHARS`] characters and its length.
pub fn quoted(value: &str) -> String {
    match value.char_indices().nth(QUOTED_CHARS) {
        None => value.to_owned(),
        Some((end, _)) => format!("{}… ({} bytes in all)", &value[..end], value.len()),
    }
}

/// Why a number does not parse, with a hint for a decimal comma.
pub(crate) fn not_a_number(value: &str) -> &'static str {
    if value.contains(',') {
        "not a number (the decimal separator is a point; a decimal comma is not read)"
    } else {
        "not a number"
    }
}

/// The SHA-256 of a file's bytes, as lowercase hex.
pub(crate) fn file_sha256(path: &Path) -> Result<String, StoreError> {
    let io = |source| StoreError::Io { path: path.to_owned(), source };
    let mut file = File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// One validated density observation: a cell at the storage resolution, the
/// start of its UTC hour (and that hour's day, kept so that sorting needs no
/// division), and a device count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Observation {
    pub(crate) cell: u64,
    pub(crate) hour: i64,
    /// Saturates at `u32::MAX`, far above what a table may hold.
    pub(crate) count: u32,
    pub(crate) day: i32,
}

impl Observation {
    pub(crate) fn new(cell: u64, hour: i64, count: u64) -> Self {
        Self { cell, hour, count: u32::try_from(count).unwrap_or(u32::MAX), day: stroom_core::day_of_micros(hour) }
    }
}

/// Reads one density file, passing each validated row to `sink`. Returns the
/// number of data rows. `progress` receives input bytes as they are consumed.
pub(crate) fn read_density_file(
    path: &Path,
    resolution: Resolution,
    sink: &mut dyn FnMut(Observation),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64, StoreError> {
    let size = std::fs::metadata(path).map_err(|source| StoreError::Io { path: path.to_owned(), source })?.len();
    if size == 0 {
        return Err(StoreError::EmptyFile { path: path.to_owned() });
    }
    let rows = match input_kind(path) {
        Some(InputKind::Csv) => read_csv(path, resolution, sink, progress)?,
        Some(InputKind::Parquet) => read_parquet(path, resolution, sink, progress)?,
        None => return Err(StoreError::UnsupportedFile { path: path.to_owned() }),
    };
    if rows == 0 {
        return Err(StoreError::NoRows { path: path.to_owned() });
    }
    Ok(rows)
}

thread_local! {
    /// The cells of the coordinates this thread has converted.
    static POINT_CELLS: std::cell::RefCell<PointMemo> = std::cell::RefCell::new(PointMemo::default());
}

/// Distinct coordinate pairs a [`PointMemo`] holds before it starts over
/// (about 40 MB).
const MEMO_POINTS: usize = 1 << 20;

/// Provider areas are fixed, so the same coordinates come back every hour,
/// and usually in the same order: the cell of each coordinate pair (its exact
/// bits) is memoised. Points are kept in first-seen order, and a lookup first
/// tries the few points that followed the previous one (a sequential read
/// when the order repeats, even with suppressed areas left out), then a hash
/// index. A miss costs one H3 conversion, as without the memo.
#[derive(Debug, Default)]
struct PointMemo {
    /// `[lat bits, lon bits, cell]` in first-seen order.
    points: Vec<[u64; 3]>,
    index: std::collections::HashMap<(u64, u64), u32, std::hash::BuildHasherDefault<PointHasher>>,
    /// The position of the previous lookup's point.
    last: usize,
    resolution: Option<Resolution>,
    /// Lookups and hits in the current window.
    lookups: u32,
    hits: u32,
    /// Lookups left to skip: when coordinates rarely repeat, the memo only
    /// costs, so it stands aside for a while and then tries again.
    resting: u32,
}

/// Lookups per window of the memo's hit rate.
const MEMO_WINDOW: u32 = 1 << 16;
/// Lookups the memo skips after a window with fewer than a quarter hits.
const MEMO_REST: u32 = 1 << 20;

/// Points after the previous one that a lookup reads before the index.
const MEMO_LOOKAHEAD: usize = 8;

impl PointMemo {
    fn find(&mut self, lat_bits: u64, lng_bits: u64, resolution: Resolution) -> Option<u64> {
        if self.resolution != Some(resolution) {
            *self = Self { resolution: Some(resolution), ..Self::default() };
            return None;
        }
        if self.resting > 0 {
            self.resting -= 1;
            return None;
        }
        self.lookups += 1;
        if self.lookups == MEMO_WINDOW {
            if self.hits < MEMO_WINDOW / 4 {
                self.resting = MEMO_REST;
            }
            self.lookups = 0;
            self.hits = 0;
        }
        let found = self.lookup(lat_bits, lng_bits);
        self.hits += u32::from(found.is_some());
        found
    }

    fn lookup(&mut self, lat_bits: u64, lng_bits: u64) -> Option<u64> {
        let ahead = self.points.get(self.last + 1..).unwrap_or_default();
        if let Some(step) = ahead.iter().take(MEMO_LOOKAHEAD).position(|p| p[0] == lat_bits && p[1] == lng_bits) {
            self.last += 1 + step;
            return Some(self.points[self.last][2]);
        }
        let position = *self.index.get(&(lat_bits, lng_bits))? as usize;
        self.last = position;
        Some(self.points[position][2])
    }

    fn insert(&mut self, lat_bits: u64, lng_bits: u64, cell: u64) {
        if self.resting > 0 {
            return;
        }
        if self.points.len() >= MEMO_POINTS {
            self.points.clear();
            self.index.clear();
        }
        self.last = self.points.len();
        self.index.insert((lat_bits, lng_bits), self.last as u32);
        self.points.push([lat_bits, lng_bits, cell]);
    }
}

/// A multiplicative hash of the two coordinate bit patterns.
#[derive(Debug, Default)]
struct PointHasher(u64);

impl std::hash::Hasher for PointHasher {
    fn finish(&self) -> u64 {
        // Fold the well-mixed high bits into the low ones the table indexes by.
        self.0 ^ (self.0 >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(29) ^ value).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Turns one row's raw values into an observation.
struct RowChecker<'a> {
    path: &'a Path,
    resolution: Resolution,
    last_ts: Vec<u8>,
    last_micros: i64,
}

impl<'a> RowChecker<'a> {
    fn new(path: &'a Path, resolution: Resolution) -> Self {
        Self { path, resolution, last_ts: Vec::new(), last_micros: 0 }
    }

    fn field_error(&self, location: Location, column: &str, value: &str, problem: impl Into<String>) -> StoreError {
        StoreError::field(self.path, location, column, value, problem)
    }

    fn ts_text(&mut self, location: Location, text: &[u8]) -> Result<i64, StoreError> {
        // Provider files repeat the same timestamp for every cell of an hour.
        if text == self.last_ts.as_slice() && !text.is_empty() {
            return Ok(self.last_micros);
        }
        let value = String::from_utf8_lossy(text);
        if value.trim().is_empty() {
            return Err(self.field_error(location, "ts", &value, "missing value"));
        }
        let micros =
            parse_timestamp_micros(&value).map_err(|e| self.field_error(location, "ts", &value, e.to_string()))?;
        self.last_ts.clear();
        self.last_ts.extend_from_slice(text);
        self.last_micros = micros;
        Ok(micros)
    }

    fn cell_from_lat_lng(&self, location: Location, lat: f64, lng: f64) -> Result<u64, StoreError> {
        for (column, value, limit) in [("lat", lat, 90.0), ("lon", lng, 180.0)] {
            if !value.is_finite() || value.abs() > limit {
                return Err(self.field_error(
                    location,
                    column,
                    &value.to_string(),
                    format!("not a finite coordinate within ±{limit} degrees"),
                ));
            }
        }
        let resolution = self.resolution;
        let hit = POINT_CELLS.with_borrow_mut(|memo| memo.find(lat.to_bits(), lng.to_bits(), resolution));
        if let Some(cell) = hit {
            return Ok(cell);
        }
        let cell = Cell::from_lat_lng(lat, lng, self.resolution)
            .map(Cell::to_u64)
            .map_err(|e| self.field_error(location, "lat", &format!("{lat}, {lng}"), e.to_string()))?;
        POINT_CELLS.with_borrow_mut(|memo| memo.insert(lat.to_bits(), lng.to_bits(), cell));
        Ok(cell)
    }

    fn cell(&self, location: Location, cell: Result<Cell, String>, shown: &str) -> Result<u64, StoreError> {
        let cell = cell.map_err(|problem| self.field_error(location, "cell", shown, problem))?;
        let own = cell.resolution();
        if own < self.resolution {
            return Err(self.field_error(
                location,
                "cell",
                shown,
                format!("resolution {own} is coarser than the storage resolution {}", self.resolution),
            ));
        }
        Ok(cell.parent(self.resolution).expect("a finer cell has a parent").to_u64())
    }

    fn coordinate_text(&self, location: Location, column: &str, text: &[u8]) -> Result<f64, StoreError> {
        let value = String::from_utf8_lossy(text);
        if value.trim().is_empty() {
            return Err(self.field_error(location, column, &value, "missing value"));
        }
        value.trim().parse::<f64>().map_err(|_| self.field_error(location, column, &value, not_a_number(&value)))
    }

    fn count_text(&self, location: Location, text: &[u8]) -> Result<u64, StoreError> {
        let value = String::from_utf8_lossy(text);
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(self.field_error(location, "count", &value, "missing value"));
        }
        if let Ok(n) = trimmed.parse::<u64>() {
            if n > u64::from(u32::MAX) {
                return Err(self.field_error(location, "count", &value, "larger than any plausible count"));
            }
            return Ok(n);
        }
        match trimmed.parse::<f64>() {
            Ok(f) => self.count_float(location, f, &value),
            Err(_) => Err(self.field_error(location, "count", &value, not_a_number(&value))),
        }
    }

    fn count_float(&self, location: Location, value: f64, shown: &str) -> Result<u64, StoreError> {
        if !value.is_finite() {
            Err(self.field_error(location, "count", shown, "not a finite number"))
        } else if value < 0.0 {
            Err(self.field_error(location, "count", shown, "negative count"))
        } else if value.fract() != 0.0 {
            Err(self.field_error(location, "count", shown, "not a whole number of devices"))
        } else if value > u32::MAX as f64 {
            Err(self.field_error(location, "count", shown, "larger than any plausible count"))
        } else {
            Ok(value as u64)
        }
    }

    fn count_integer(&self, location: Location, value: i64) -> Result<u64, StoreError> {
        match u64::try_from(value) {
            Err(_) => Err(self.field_error(location, "count", &value.to_string(), "negative count")),
            Ok(n) if n > u64::from(u32::MAX) => {
                Err(self.field_error(location, "count", &value.to_string(), "larger than any plausible count"))
            }
            Ok(n) => Ok(n),
        }
    }
}

/// A CSV reader's error, located by line, in the words a provider understands.
pub(crate) fn csv_error(path: &Path, error: csv::Error) -> StoreError {
    let line = error.position().map(|p| p.line()).unwrap_or(1);
    let problem = match error.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("the row has {len} fields, the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "the text is not valid UTF-8 (is this a CSV file?)".into(),
        _ => error.to_string(),
    };
    StoreError::Csv { path: path.to_owned(), location: Location::Line(line), problem }
}

fn read_csv(
    path: &Path,
    resolution: Resolution,
    sink: &mut dyn FnMut(Observation),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64, StoreError> {
    let CsvInput { mut reader, compressed } = open_csv(path)?;
    let located = |error| csv_error(path, error);
    let header: Vec<String> = reader.headers().map_err(located)?.iter().map(str::to_owned).collect();
    let layout = Layout::detect(path, &header)?;
    let mut checker = RowChecker::new(path, resolution);
    let mut record = csv::ByteRecord::new();
    let mut rows = 0u64;
    let mut reported = 0u64;
    while reader.read_byte_record(&mut record).map_err(located)? {
        let location = Location::Line(record.position().map(|p| p.line()).unwrap_or(rows + 2));
        let observation = match layout {
            Layout::LatLon { ts, lat, lon, count } => {
                let micros = checker.ts_text(location, &record[ts])?;
                let lat = checker.coordinate_text(location, "lat", &record[lat])?;
                let lng = checker.coordinate_text(location, "lon", &record[lon])?;
                let cell = checker.cell_from_lat_lng(location, lat, lng)?;
                Observation::new(cell, hour_floor_micros(micros), checker.count_text(location, &record[count])?)
            }
            Layout::Cell { ts, cell, count } => {
                let micros = checker.ts_text(location, &record[ts])?;
                let text = String::from_utf8_lossy(&record[cell]);
                let parsed = if text.trim().is_empty() {
                    Err("missing value".to_owned())
                } else {
                    Cell::parse(&text).map_err(|e| e.to_string())
                };
                let cell = checker.cell(location, parsed, &text)?;
                Observation::new(cell, hour_floor_micros(micros), checker.count_text(location, &record[count])?)
            }
        };
        sink(observation);
        rows += 1;
        // Positions count decompressed bytes: a compressed file's progress
        // comes whole at its end.
        if rows % 65_536 == 0 && !compressed {
            let position = record.position().map(|p| p.byte()).unwrap_or(0);
            progress(position - reported);
            reported = position;
        }
    }
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(reported);
    progress(size.saturating_sub(reported));
    Ok(rows)
}

fn read_parquet(
    path: &Path,
    resolution: Resolution,
    sink: &mut dyn FnMut(Observation),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64, StoreError> {
    let file = File::open(path).map_err(|source| StoreError::Io { path: path.to_owned(), source })?;
    let parquet_error = |problem: String| StoreError::Parquet { path: path.to_owned(), problem };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_error(e.to_string()))?;
    let total_rows = builder.metadata().file_metadata().num_rows().max(1) as u64;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let names: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
    let layout = Layout::detect(path, &names)?;
    for (name, index) in layout.names() {
        let data_type = builder.schema().field(index).data_type().clone();
        check_parquet_type(path, name, &data_type)?;
    }
    let reader = builder.with_batch_size(65_536).build().map_err(|e| parquet_error(e.to_string()))?;
    let mut checker = RowChecker::new(path, resolution);
    let mut rows = 0u64;
    let mut reported = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| parquet_error(e.to_string()))?;
        read_parquet_batch(&mut checker, layout, &batch, rows, sink)?;
        rows += batch.num_rows() as u64;
        let done = size * rows.min(total_rows) / total_rows;
        progress(done - reported);
        reported = done;
    }
    progress(size.saturating_sub(reported));
    Ok(rows)
}

fn check_parquet_type(path: &Path, column: &str, data_type: &DataType) -> Result<(), StoreError> {
    let (ok, expected) = match column {
        "ts" => (
            matches!(data_type, DataType::Timestamp(_, _) | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View),
            "a timestamp or a text timestamp",
        ),
        "lat" | "lon" => (data_type.is_floating() || data_type.is_integer(), "a number"),
        "cell" => (
            matches!(
                data_type,
                DataType::UInt64 | DataType::Int64 | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ),
            "a 64-bit integer H3 index or a hex string",
        ),
        _ => (data_type.is_integer() || data_type.is_floating(), "an integer count"),
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::ColumnType {
            path: path.to_owned(),
            column: column.to_owned(),
            found: data_type.to_string(),
            expected: expected.into(),
        })
    }
}

fn to_type(array: &ArrayRef, data_type: &DataType) -> Result<ArrayRef, StoreError> {
    Ok(cast(array, data_type)?)
}

fn read_parquet_batch(
    checker: &mut RowChecker<'_>,
    layout: Layout,
    batch: &RecordBatch,
    first_row: u64,
    sink: &mut dyn FnMut(Observation),
) -> Result<(), StoreError> {
    let column = |index: usize| batch.column(index).clone();
    let (ts_index, count_index) = match layout {
        Layout::LatLon { ts, count, .. } | Layout::Cell { ts, count, .. } => (ts, count),
    };
    let ts = column(ts_index);
    let ts_micros = match ts.data_type() {
        DataType::Timestamp(_, _) => Some(to_type(&ts, &DataType::Timestamp(TimeUnit::Microsecond, None))?),
        _ => None,
    };
    let ts_micros =
        ts_micros.as_ref().map(|a| a.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>());
    let ts_text = match ts.data_type() {
        DataType::Timestamp(_, _) => None,
        _ => Some(to_type(&ts, &DataType::Utf8)?),
    };
    let ts_text = ts_text.as_ref().map(|a| a.as_string::<i32>());
    let count = column(count_index);
    let count_float = count.data_type().is_floating();
    let count_values = to_type(&count, if count_float { &DataType::Float64 } else { &DataType::Int64 })?;

    enum Where<'b> {
        LatLon(&'b datafusion::arrow::array::Float64Array, &'b datafusion::arrow::array::Float64Array),
        Integer(&'b datafusion::arrow::array::Int64Array, bool),
        Text(&'b datafusion::arrow::array::StringArray),
    }
    let owned: Vec<ArrayRef>;
    let place = match layout {
        Layout::LatLon { lat, lon, .. } => {
            owned = vec![to_type(&column(lat), &DataType::Float64)?, to_type(&column(lon), &DataType::Float64)?];
            Where::LatLon(owned[0].as_primitive::<Float64Type>(), owned[1].as_primitive::<Float64Type>())
        }
        Layout::Cell { cell, .. } => {
            let raw = column(cell);
            match raw.data_type() {
                DataType::UInt64 => {
                    // Valid H3 indexes have bit 63 clear, so they fit in i64; a
                    // value that does not is reported as invalid below.
                    owned = vec![Arc::new(datafusion::arrow::array::Int64Array::from_iter(
                        raw.as_primitive::<UInt64Type>().iter().map(|v| v.map(|u| i64::try_from(u).unwrap_or(-1))),
                    )) as ArrayRef];
                    Where::Integer(owned[0].as_primitive::<Int64Type>(), true)
                }
                DataType::Int64 => {
                    owned = vec![raw];
                    Where::Integer(owned[0].as_primitive::<Int64Type>(), false)
                }
                _ => {
                    owned = vec![to_type(&raw, &DataType::Utf8)?];
                    Where::Text(owned[0].as_string::<i32>())
                }
            }
        }
    };

    for i in 0..batch.num_rows() {
        let location = Location::Row(first_row + i as u64 + 1);
        let micros = match (ts_micros, ts_text) {
            (Some(values), _) if values.is_valid(i) => values.value(i),
            (Some(_), _) => return Err(checker.field_error(location, "ts", "", "missing value")),
            (None, Some(text)) if text.is_valid(i) => checker.ts_text(location, text.value(i).as_bytes())?,
            _ => return Err(checker.field_error(location, "ts", "", "missing value")),
        };
        let cell = match &place {
            Where::LatLon(lat, lon) => {
                if lat.is_null(i) {
                    return Err(checker.field_error(location, "lat", "", "missing value"));
                }
                if lon.is_null(i) {
                    return Err(checker.field_error(location, "lon", "", "missing value"));
                }
                checker.cell_from_lat_lng(location, lat.value(i), lon.value(i))?
            }
            Where::Integer(values, unsigned) => {
                if values.is_null(i) {
                    return Err(checker.field_error(location, "cell", "", "missing value"));
                }
                let value = values.value(i);
                let shown = if *unsigned && value < 0 {
                    array_value_to_string(
                        batch.column(match layout {
                            Layout::Cell { cell, .. } => cell,
                            Layout::LatLon { .. } => unreachable!("integer cells only in the cell layout"),
                        }),
                        i,
                    )?
                } else {
                    value.to_string()
                };
                let parsed = u64::try_from(value)
                    .map_err(|_| "not a valid H3 cell index".to_owned())
                    .and_then(|v| Cell::from_u64(v).map_err(|e| e.to_string()));
                checker.cell(location, parsed, &shown)?
            }
            Where::Text(values) => {
                if values.is_null(i) {
                    return Err(checker.field_error(location, "cell", "", "missing value"));
                }
                let text = values.value(i);
                checker.cell(location, Cell::parse(text).map_err(|e| e.to_string()), text)?
            }
        };
        if count_values.is_null(i) {
            return Err(checker.field_error(location, "count", "", "missing value"));
        }
        let count = if count_float {
            let value = count_values.as_primitive::<Float64Type>().value(i);
            checker.count_float(location, value, &value.to_string())?
        } else {
            checker.count_integer(location, count_values.as_primitive::<Int64Type>().value(i))?
        };
        sink(Observation::new(cell, hour_floor_micros(micros), count));
    }
    Ok(())
}

use std::sync::Arc;

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(lat: f64, lng: f64, resolution: Resolution) -> u64 {
        Cell::from_lat_lng(lat, lng, resolution).unwrap().to_u64()
    }

    fn read_all(path: &Path) -> Result<Vec<Observation>, StoreError> {
        let mut rows = Vec::new();
        read_density_file(path, Resolution::new(7).unwrap(), &mut |o| rows.push(o), &|_| {})?;
        Ok(rows)
    }

    #[test]
    fn gzip_and_zstd_files_read_as_the_plain_file_whatever_their_name() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let text = "ts,lat,lon,count\n2024-05-01T10:00:00Z,51.0,1.9,30\n2024-05-01T11:00:00Z,51.0,1.9,17\n";
        let plain = dir.path().join("a.csv");
        std::fs::write(&plain, text).unwrap();
        let expected = read_all(&plain).unwrap();
        assert_eq!(expected.len(), 2);
        let gzip = |bytes: &[u8]| {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(bytes).unwrap();
            encoder.finish().unwrap()
        };
        // Two gzip members one after the other (`cat a.gz b.gz`) are one file.
        let (head, tail) = text.split_at(50);
        let members = [gzip(head.as_bytes()), gzip(tail.as_bytes())].concat();
        let zstd = zstd::encode_all(text.as_bytes(), 3).unwrap();
        for (name, bytes) in [("b.csv.gz", members.clone()), ("c.csv.zst", zstd), ("d.csv", members)] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(read_all(&path).unwrap(), expected, "{name}");
        }
        // A broken stream is an error of that file, not a panic.
        let broken = dir.path().join("e.csv.gz");
        std::fs::write(&broken, &gzip(text.as_bytes())[..30]).unwrap();
        let error = read_all(&broken).unwrap_err().to_string();
        assert!(error.contains("e.csv.gz"), "{error}");
        assert_eq!(input_kind(Path::new("x.CSV.GZ")), Some(InputKind::Csv));
        assert_eq!(input_kind(Path::new("x.json.gz")), None);
    }

    #[test]
    fn a_semicolon_file_is_read_and_a_decimal_comma_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export.csv");
        std::fs::write(&path, "ts;lat;lon;count\n2024-05-01T10:00:00Z;51.0;1.9;30\n").unwrap();
        assert_eq!(read_all(&path).unwrap().len(), 1);
        std::fs::write(&path, "ts;lat;lon;count\n2024-05-01T10:00:00Z;51,0;1,9;30\n").unwrap();
        let error = read_all(&path).unwrap_err().to_string();
        assert!(error.contains("line 2, column 'lat', value '51,0'") && error.contains("decimal comma"), "{error}");
        std::fs::write(&path, "ts\tlat\tlon\tcount\n2024-05-01T10:00:00Z\t51.0\t1.9\t30\n").unwrap();
        assert_eq!(read_all(&path).unwrap().len(), 1);
    }

    #[test]
    fn a_long_value_is_quoted_in_part() {
        assert_eq!(quoted("short"), "short");
        let long = "é".repeat(100);
        let shown = quoted(&long);
        assert!(shown.starts_with(&"é".repeat(64)) && shown.ends_with("… (200 bytes in all)"), "{shown}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.csv");
        std::fs::write(&path, format!("ts,lat,lon,count\n2024-05-01T10:00:00Z,51.0,1.9,{}\n", "x".repeat(5 << 20)))
            .unwrap();
        let error = read_all(&path).unwrap_err().to_string();
        assert!(error.len() < 300 && error.contains("(5242880 bytes in all)"), "{error}");
    }

    #[test]
    fn the_point_memo_answers_in_order_out_of_order_and_per_resolution() {
        let seven = Resolution::new(7).unwrap();
        let nine = Resolution::new(9).unwrap();
        let points: Vec<(f64, f64)> =
            (0..40).map(|i| (40.0 + f64::from(i) * 0.1, 10.0 - f64::from(i) * 0.07)).collect();
        let mut memo = PointMemo::default();
        for &(lat, lng) in &points {
            assert_eq!(memo.find(lat.to_bits(), lng.to_bits(), seven), None);
            memo.insert(lat.to_bits(), lng.to_bits(), cell(lat, lng, seven));
        }
        // The same order with gaps (suppressed areas), then reversed.
        for &(lat, lng) in points.iter().step_by(3).chain(points.iter().rev()) {
            assert_eq!(memo.find(lat.to_bits(), lng.to_bits(), seven), Some(cell(lat, lng, seven)));
        }
        // An unseen point, and a bit-different one (−0.0), are misses.
        assert_eq!(memo.find(1.5f64.to_bits(), 2.5f64.to_bits(), seven), None);
        assert_eq!(memo.find((-0.0f64).to_bits(), 0.0f64.to_bits(), seven), None);
        // Another resolution starts over.
        let (lat, lng) = points[0];
        assert_eq!(memo.find(lat.to_bits(), lng.to_bits(), nine), None);
        memo.insert(lat.to_bits(), lng.to_bits(), cell(lat, lng, nine));
        assert_eq!(memo.find(lat.to_bits(), lng.to_bits(), nine), Some(cell(lat, lng, nine)));
        assert_eq!(memo.points.len(), 1);
    }

    #[test]
    fn the_point_memo_stands_aside_when_points_do_not_repeat() {
        let seven = Resolution::new(7).unwrap();
        let mut memo = PointMemo::default();
        let mut misses = 0u32;
        for i in 0..MEMO_WINDOW + 10 {
            let (lat, lng): (f64, f64) = (10.0 + f64::from(i) * 1e-5, 20.0);
            if memo.find(lat.to_bits(), lng.to_bits(), seven).is_none() {
                misses += 1;
                memo.insert(lat.to_bits(), lng.to_bits(), cell(lat, lng, seven));
            }
        }
        assert_eq!(misses, MEMO_WINDOW + 10);
        assert!(memo.resting > 0);
        let held = memo.points.len();
        assert!(held < (MEMO_WINDOW + 10) as usize);
        // While resting it neither answers nor grows.
        let (lat, lng): (f64, f64) = (10.0, 20.0);
        assert_eq!(memo.find(lat.to_bits(), lng.to_bits(), seven), None);
        memo.insert(1.0f64.to_bits(), 2.0f64.to_bits(), cell(1.0, 2.0, seven));
        assert_eq!(memo.points.len(), held);
    }
}
