//! Arrivals ingest: official daily counts per station, from plain or mapped
//! CSV layouts, merged into the `arrivals` table in one commit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, Date32Array, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{Date32Type, Int32Type};
use datafusion::prelude::SessionContext;
use deltalake::DeltaTableError;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use serde_json::json;
use stroom_core::{date_to_days, days_to_date, parse_date};

use crate::input::{csv_error, file_sha256, not_a_number, open_csv, quoted};
use crate::schema::{arrivals_columns, arrivals_schema};
use crate::store::{COMMIT_ATTEMPTS, COMMIT_METADATA_KEY, ingested_hashes, is_lost_race};
use crate::{Location, Store, StoreError, TableName};

/// What an empty count cell means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmptyCounts {
    /// An empty count is an error.
    #[default]
    Error,
    /// An empty count on a day up to the station's last reported figure is a
    /// day with no arrivals (zero); empty counts after that last figure are
    /// not yet published, hence unknown, and are not loaded.
    Zero,
}

/// How to read an arrivals file.
#[derive(Debug, Clone, Default)]
pub struct ArrivalsIngest {
    /// The station of every row, for files without a station column.
    pub station: Option<String>,
    /// Column names, when the file does not use `date`, `station`, `count`.
    /// When any is given, other columns of the file are ignored.
    pub date_column: Option<String>,
    pub station_column: Option<String>,
    pub count_column: Option<String>,
    pub empty: EmptyCounts,
}

/// What an arrivals ingest did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrivalsReport {
    pub path: PathBuf,
    pub sha256: String,
    /// The same content was ingested before: nothing was read or written.
    pub already_ingested: bool,
    /// Data rows in the file.
    pub rows_read: u64,
    /// Rows loaded (including days read as zero).
    pub rows_loaded: u64,
    /// Empty counts read as zero.
    pub zero_filled: u64,
    /// Empty counts after a station's last figure, left out as unknown.
    pub unknown_trailing: u64,
    /// Loaded rows that were not in the table before.
    pub new_rows: u64,
    /// Loaded rows that replaced a different earlier figure (a revision).
    pub revised_rows: u64,
    /// Stations in the file.
    pub stations: Vec<String>,
    pub first_date: Option<NaiveDate>,
    pub last_date: Option<NaiveDate>,
    pub version_before: Option<u64>,
    pub version: Option<u64>,
}

struct Columns {
    date: usize,
    station: Option<usize>,
    count: usize,
}

impl ArrivalsIngest {
    fn columns(&self, path: &Path, header: &[String]) -> Result<Columns, StoreError> {
        let mapped = self.date_column.is_some() || self.station_column.is_some() || self.count_column.is_some();
        let expected = if mapped {
            "the mapped columns".to_owned()
        } else if self.station.is_some() {
            "date,count".to_owned()
        } else {
            "date,station,count (or date,count with --station)".to_owned()
        };
        let error = |problem: String| StoreError::Columns {
            path: path.to_owned(),
            problem,
            found: quoted(&header.join(",")),
            expected: expected.clone(),
        };
        let find = |name: &str| header.iter().position(|h| h.trim().eq_ignore_ascii_case(name));
        let date_name = self.date_column.as_deref().unwrap_or("date");
        let count_name = self.count_column.as_deref().unwrap_or("count");
        let date = find(date_name).ok_or_else(|| error(format!("missing column '{date_name}'")))?;
        let count = find(count_name).ok_or_else(|| error(format!("missing column '{count_name}'")))?;
        let station = match (&self.station, &self.station_column) {
            (Some(_), Some(_)) => {
                return Err(StoreError::Option("give either a station or a station column, not both".into()));
            }
            (Some(_), None) => None,
            (None, column) => {
                let name = column.as_deref().unwrap_or("station");
                Some(find(name).ok_or_else(|| error(format!("missing column '{name}' (or give --station)")))?)
            }
        };
        if !mapped {
            let known = ["date", "count", "station"];
            if let Some(extra) = header.iter().find(|h| !known.contains(&h.trim().to_ascii_lowercase().as_str())) {
                return Err(error(format!("unexpected column '{}'", quoted(extra))));
            }
            if self.station.is_some() && find("station").is_some() {
                return Err(error("the file has a station column and --station was given".into()));
            }
        }
        Ok(Columns { date, station, count })
    }

    /// Reads and checks the whole file, then merges it into the `arrivals`
    /// table: rows for (station, date) pairs already present are replaced
    /// (official figures get revised; the table history keeps the earlier
    /// vintage), others are added. One commit, or none on any error.
    ///
    /// The commit lands only on the version the merge read: when another
    /// writer commits first, the merge is made again on top of its commit
    /// (a few times), so that concurrent ingests never overwrite each other.
    pub async fn run(&self, store: &Store, path: &Path) -> Result<ArrivalsReport, StoreError> {
        let mut attempt = 1;
        loop {
            match self.run_once(store, path).await {
                Err(StoreError::Delta { source, .. }) if is_lost_race(&source) && attempt < COMMIT_ATTEMPTS => {
                    tracing::info!(attempt, "Another writer committed to arrivals first; merging again on top of it.");
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn run_once(&self, store: &Store, path: &Path) -> Result<ArrivalsReport, StoreError> {
        if let Some(station) = &self.station {
            check_station_id(station).map_err(StoreError::Option)?;
        }
        let size = std::fs::metadata(path).map_err(|source| StoreError::Io { path: path.to_owned(), source })?.len();
        if size == 0 {
            return Err(StoreError::EmptyFile { path: path.to_owned() });
        }
        let sha256 = file_sha256(path)?;
        let existing = store.table(TableName::Arrivals).await?;
        let version_before = existing.as_ref().and_then(|t| t.version());
        let mut report = ArrivalsReport {
            path: path.to_owned(),
            sha256: sha256.clone(),
            already_ingested: false,
            rows_read: 0,
            rows_loaded: 0,
            zero_filled: 0,
            unknown_trailing: 0,
            new_rows: 0,
            revised_rows: 0,
            stations: Vec::new(),
            first_date: None,
            last_date: None,
            version_before,
            version: version_before,
        };
        if let Some(table) = &existing {
            if ingested_hashes(table, TableName::Arrivals).await?.contains(&sha256) {
                report.already_ingested = true;
                return Ok(report);
            }
        }

        let parsed = self.read(path, &mut report)?;
        let mut merged: BTreeMap<(String, i32), i32> = match &existing {
            Some(table) => read_arrivals(table).await?,
            None => BTreeMap::new(),
        };
        for ((station, day), count) in &parsed {
            match merged.insert((station.clone(), *day), *count) {
                None => report.new_rows += 1,
                Some(old) if old != *count => report.revised_rows += 1,
                Some(_) => {}
            }
        }
        report.rows_loaded = parsed.len() as u64;
        report.first_date = parsed.keys().map(|(_, d)| *d).min().map(days_to_date);
        report.last_date = parsed.keys().map(|(_, d)| *d).max().map(days_to_date);
        let mut stations: Vec<String> = parsed.keys().map(|(s, _)| s.clone()).collect();
        stations.dedup();
        report.stations = stations;

        // The merge is written on top of exactly the version it read.
        let table = match existing {
            Some(table) => table,
            None => {
                let created = store.open_or_create(TableName::Arrivals, arrivals_columns(), &[]).await?;
                if created.version() != Some(0) {
                    // Another writer created the table and wrote to it first.
                    let source = DeltaTableError::VersionAlreadyExists(created.version().unwrap_or(0));
                    return Err(StoreError::Delta { table: "arrivals".into(), source });
                }
                created
            }
        };
        let metadata = json!({
            "operation": "ingest-arrivals",
            "sources": [{
                "file": path.file_name().map(|n| n.to_string_lossy().into_owned()),
                "sha256": sha256,
                "rows": report.rows_read,
            }],
            "rows_loaded": report.rows_loaded,
            "new_rows": report.new_rows,
            "revised_rows": report.revised_rows,
            "unknown_trailing": report.unknown_trailing,
        });
        let table = table
            .write(vec![arrivals_batch(&merged)?])
            .with_save_mode(SaveMode::Overwrite)
            .with_commit_properties(
                CommitProperties::default()
                    .with_metadata([(COMMIT_METADATA_KEY.to_owned(), metadata)])
                    .with_max_retries(0),
            )
            .await
            .map_err(StoreError::delta("arrivals"))?;
        report.version = table.version();
        tracing::info!(
            rows = report.rows_loaded,
            new = report.new_rows,
            revised = report.revised_rows,
            "Ingested arrivals."
        );
        Ok(report)
    }

    fn read(&self, path: &Path, report: &mut ArrivalsReport) -> Result<BTreeMap<(String, i32), i32>, StoreError> {
        let mut reader = open_csv(path)?.reader;
        let located = |error| csv_error(path, error);
        let header: Vec<String> = reader.headers().map_err(located)?.iter().map(str::to_owned).collect();
        let columns = self.columns(path, &header)?;
        let column_name = |index: usize| header[index].clone();
        let field_error = |location: Location, column: usize, value: &str, problem: String| {
            StoreError::field(path, location, &column_name(column), value, problem)
        };

        // (station, day) → (count or empty, line), checked for duplicates.
        let mut rows: BTreeMap<(String, i32), (Option<i32>, u64)> = BTreeMap::new();
        for record in reader.records() {
            let record = record.map_err(located)?;
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            let location = Location::Line(line);
            report.rows_read += 1;
            let date_text = &record[columns.date];
            let date =
                parse_date(date_text).map_err(|e| field_error(location, columns.date, date_text, e.to_string()))?;
            let station = match columns.station {
                Some(index) => {
                    let text = record[index].trim();
                    check_station_id(text).map_err(|problem| field_error(location, index, text, problem))?;
                    text.to_owned()
                }
                None => self.station.clone().expect("a station is given when the file has no station column"),
            };
            let count_text = record[columns.count].trim();
            let count = if count_text.is_empty() {
                match self.empty {
                    EmptyCounts::Error => {
                        return Err(field_error(
                            location,
                            columns.count,
                            count_text,
                            "missing value (use --empty zero if an empty count means no arrivals)".into(),
                        ));
                    }
                    EmptyCounts::Zero => None,
                }
            } else {
                Some(
                    parse_count(count_text)
                        .map_err(|problem| field_error(location, columns.count, count_text, problem))?,
                )
            };
            let key = (station, date_to_days(date));
            if let Some((_, first_line)) = rows.get(&key) {
                return Err(field_error(
                    location,
                    columns.date,
                    date_text,
                    format!("station '{}' already has a figure for this date on line {first_line}", key.0),
                ));
            }
            rows.insert(key, (count, line));
        }
        if report.rows_read == 0 {
            return Err(StoreError::NoRows { path: path.to_owned() });
        }

        // The last reported day of each station: empty counts after it are unknown.
        let mut last_figure: BTreeMap<&str, i32> = BTreeMap::new();
        for ((station, day), (count, _)) in &rows {
            if count.is_some() {
                let last = last_figure.entry(station.as_str()).or_insert(*day);
                *last = (*last).max(*day);
            }
        }
        let mut result = BTreeMap::new();
        for ((station, day), (count, _)) in &rows {
            match count {
                Some(n) => {
                    result.insert((station.clone(), *day), *n);
                }
                None if last_figure.get(station.as_str()).is_some_and(|last| day < last) => {
                    report.zero_filled += 1;
                    result.insert((station.clone(), *day), 0);
                }
                None => report.unknown_trailing += 1,
            }
        }
        Ok(result)
    }
}

fn parse_count(text: &str) -> Result<i32, String> {
    if let Ok(n) = text.parse::<i64>() {
        return if n < 0 {
            Err("negative count".into())
        } else {
            i32::try_from(n).map_err(|_| "larger than any plausible count".into())
        };
    }
    match text.parse::<f64>() {
        Ok(f) if !f.is_finite() => Err("not a finite number".into()),
        Ok(f) if f < 0.0 => Err("negative count".into()),
        Ok(f) if f.fract() != 0.0 => Err("not a whole number of people".into()),
        Ok(f) if f > i32::MAX as f64 => Err("larger than any plausible count".into()),
        Ok(f) => Ok(f as i32),
        Err(_) => Err(not_a_number(text).into()),
    }
}

fn check_station_id(text: &str) -> Result<(), String> {
    if !text.is_empty()
        && text.len() <= 64
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err("a station id is 1-64 lowercase ascii letters, digits, '-' or '_'".into())
    }
}

/// Every row of the arrivals table, keyed by (station, day).
pub(crate) async fn read_arrivals(table: &deltalake::DeltaTable) -> Result<BTreeMap<(String, i32), i32>, StoreError> {
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state()).map_err(StoreError::delta("arrivals"))?;
    let provider = table.table_provider().await.map_err(StoreError::query("arrivals"))?;
    let batches = ctx
        .read_table(provider)
        .map_err(StoreError::query("arrivals"))?
        .collect()
        .await
        .map_err(StoreError::query("arrivals"))?;
    let mut rows = BTreeMap::new();
    for batch in batches {
        let batch = datafusion::arrow::compute::cast(
            &datafusion::arrow::array::StructArray::from(batch) as &dyn Array,
            &datafusion::arrow::datatypes::DataType::Struct(arrivals_schema().fields().clone()),
        )?;
        let batch = RecordBatch::from(batch.as_struct());
        let stations = batch.column(0).as_string::<i32>();
        let days = batch.column(1).as_primitive::<Date32Type>();
        let counts = batch.column(2).as_primitive::<Int32Type>();
        for i in 0..batch.num_rows() {
            rows.insert((stations.value(i).to_owned(), days.value(i)), counts.value(i));
        }
    }
    Ok(rows)
}

fn arrivals_batch(rows: &BTreeMap<(String, i32), i32>) -> Result<RecordBatch, StoreError> {
    let stations = StringArray::from_iter_values(rows.keys().map(|(s, _)| s.as_str()));
    let days = Date32Array::from_iter_values(rows.keys().map(|(_, d)| *d));
    let counts = Int32Array::from_iter_values(rows.values().copied());
    Ok(RecordBatch::try_new(arrivals_schema(), vec![Arc::new(stations), Arc::new(days), Arc::new(counts)])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(parse_count("12"), Ok(12));
        assert_eq!(parse_count("12.0"), Ok(12));
        assert!(parse_count("-1").is_err());
        assert!(parse_count("1.5").is_err());
        assert!(parse_count("NaN").is_err());
        assert!(parse_count("x").is_err());
    }
}
