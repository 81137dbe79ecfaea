//! The daily rollup of density, `density_daily(cell, day, devices,
//! cell_hours)`: the devices and the reported cell-hours of each (cell, day),
//! so that daily series (the models' upstream signal, the maps' baselines)
//! read a table about 24 times smaller than the hourly one.
//!
//! The rollup is derived, never ingested into. Each of its commits records
//! the density version it is complete for (`density_version`); a reader uses
//! the rollup only at exactly the density version it reads, and the hourly
//! table otherwise, so that a rollup that lags (an ingest stopped between its
//! two commits) can give a slower answer but never a different one. An ingest
//! appends the rollup of its own rows as it writes them, when the rollup
//! was complete for the density version it built on; otherwise
//! [`catch_up_daily`] rolls up the density files the rollup does not cover
//! yet. [`daily_table_for`] loads the rollup at the commit complete for a
//! given density version. Rollup files are sorted by cell, then day.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Date32Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, TimestampMicrosecondType,
};
use datafusion::object_store::ObjectStoreExt;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use deltalake::DeltaTable;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, DataType as DeltaType, Remove, StructField};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use futures::TryStreamExt;
use serde_json::{Value, json};

use crate::input::Observation;
use crate::overlap::file_day;
use crate::store::{COMMIT_METADATA_KEY, commit_metadata, remove_uncommitted, sorted_writer_properties};
use crate::{Store, StoreError, TableName};

/// Rollup rows buffered before they are sorted by cell and written as one
/// file (32 bytes each).
const BUFFER_ROWS: usize = 1 << 21;
/// Rows per Parquet row group of the rollup.
const ROW_GROUP_ROWS: usize = 32_768;
/// Rows per record batch handed to the Delta writer.
const BATCH_ROWS: usize = 262_144;

/// `density_daily(cell, day, devices, cell_hours)`: per (cell, UTC day), the
/// sum of the stored hourly counts and the number of stored cell-hours. Files
/// are sorted by cell, then day.
pub fn density_daily_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("cell", DataType::Int64, false),
        Field::new("day", DataType::Date32, false),
        Field::new("devices", DataType::Int64, false),
        Field::new("cell_hours", DataType::Int64, false),
    ]))
}

fn density_daily_columns() -> Vec<StructField> {
    vec![
        StructField::new("cell", DeltaType::LONG, false),
        StructField::new("day", DeltaType::DATE, false),
        StructField::new("devices", DeltaType::LONG, false),
        StructField::new("cell_hours", DeltaType::LONG, false),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DailyRow {
    cell: u64,
    day: i32,
    devices: u64,
    cell_hours: u64,
}

/// Rollup rows on their way into one rollup commit: buffered, sorted by
/// (cell, day), written in files of at most [`BUFFER_ROWS`] rows.
pub(crate) struct DailyRollup {
    table: DeltaTable,
    writer: RecordBatchWriter,
    rows: Vec<DailyRow>,
    adds: Vec<Add>,
    /// Rollup files this commit replaces (rewritten without the rows of
    /// days that a correction changed).
    removes: Vec<Remove>,
    /// The days those files lose, as the overwrite's predicate.
    predicate: Option<String>,
    written: u64,
}

impl DailyRollup {
    /// Starts a rollup commit, creating the rollup table if missing.
    pub(crate) async fn start(store: &Store) -> Result<Self, StoreError> {
        let table = store.open_or_create(TableName::DensityDaily, density_daily_columns(), &[]).await?;
        let writer = RecordBatchWriter::for_table(&table)
            .map_err(StoreError::delta("density_daily"))?
            .with_writer_properties(sorted_writer_properties(ROW_GROUP_ROWS));
        Ok(Self { table, writer, rows: Vec::new(), adds: Vec::new(), removes: Vec::new(), predicate: None, written: 0 })
    }

    /// Adds hourly counts of one (cell, day); successive calls for the same
    /// key are summed in place.
    pub(crate) fn add(&mut self, cell: u64, day: i32, devices: u64, cell_hours: u64) {
        match self.rows.last_mut() {
            Some(last) if last.cell == cell && last.day == day => {
                last.devices += devices;
                last.cell_hours += cell_hours;
            }
            _ => self.rows.push(DailyRow { cell, day, devices, cell_hours }),
        }
    }

    /// Writes the buffer once it is full.
    pub(crate) async fn flush_if_full(&mut self) -> Result<(), StoreError> {
        if self.rows.len() >= BUFFER_ROWS { self.write_buffer().await } else { Ok(()) }
    }

    async fn write_buffer(&mut self) -> Result<(), StoreError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut rows = std::mem::take(&mut self.rows);
        rows.sort_unstable_by_key(|r| (r.cell, r.day));
        rows.dedup_by(|next, kept| {
            let same = next.cell == kept.cell && next.day == kept.day;
            if same {
                kept.devices += next.devices;
                kept.cell_hours += next.cell_hours;
            }
            same
        });
        for chunk in rows.chunks(BATCH_ROWS) {
            self.writer.write(daily_batch(chunk)?).await.map_err(StoreError::delta("density_daily"))?;
        }
        self.written += rows.len() as u64;
        self.adds.extend(self.writer.flush().await.map_err(StoreError::delta("density_daily"))?);
        Ok(())
    }

    /// Commits the rollup as complete for `density_version` of density.
    pub(crate) async fn commit(mut self, density_version: u64) -> Result<u64, StoreError> {
        self.write_buffer().await?;
        let metadata = json!({
            "operation": "rollup-density",
            "density_version": density_version,
            "rows_written": self.written,
        });
        let snapshot = self.table.snapshot().map_err(StoreError::delta("density_daily"))?;
        let operation = if self.removes.is_empty() {
            DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None }
        } else {
            DeltaOperation::Write { mode: SaveMode::Overwrite, partition_by: None, predicate: self.predicate.take() }
        };
        let committed = CommitBuilder::from(
            // Only on the rollup version this one builds on: a rollup
            // committed meanwhile makes this one stale.
            CommitProperties::default().with_metadata([(COMMIT_METADATA_KEY.to_owned(), metadata)]).with_max_retries(0),
        )
        .with_actions(
            std::mem::take(&mut self.adds)
                .into_iter()
                .map(Action::Add)
                .chain(std::mem::take(&mut self.removes).into_iter().map(Action::Remove))
                .collect(),
        )
        .build(Some(snapshot), self.table.log_store(), operation)
        .await
        .map_err(StoreError::delta("density_daily"))?;
        Ok(committed.version())
    }

    /// Gives the rollup up, removing the files it wrote (they were never
    /// part of the table).
    pub(crate) async fn abandon(self) {
        remove_uncommitted(&self.table, &self.adds).await;
    }
}

fn daily_batch(rows: &[DailyRow]) -> Result<RecordBatch, StoreError> {
    Ok(RecordBatch::try_new(
        density_daily_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.cell as i64))),
            Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.day))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.devices as i64))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.cell_hours as i64))),
        ],
    )?)
}

/// The density version the latest rollup commit is complete for; `None`
/// when there is no rollup.
async fn covered_version(store: &Store) -> Result<Option<u64>, StoreError> {
    let Some(table) = store.table(TableName::DensityDaily).await? else { return Ok(None) };
    let history = commit_metadata(&table, TableName::DensityDaily).await?;
    Ok(history.first().and_then(|m| m.get("density_version")).and_then(Value::as_u64))
}

/// Whether the rollup is complete for `density_version` (so that an ingest
/// on top of it may append the rollup of its own rows).
pub(crate) async fn is_current(store: &Store, density_version: Option<u64>) -> Result<bool, StoreError> {
    Ok(match density_version {
        None => store.table(TableName::DensityDaily).await?.is_none(),
        Some(version) => covered_version(store).await? == Some(version),
    })
}

/// Brings the rollup up to the density table's latest version, in one
/// commit: the density files it does not cover yet are read back and rolled
/// up. When files it covers were removed since (a corrected delivery
/// rewrote their day), the rollup of those days is worked out again: the
/// rollup files holding rows of them are rewritten without those rows, and
/// every density file of those days is rolled up anew. Returns the rollup
/// version, or `None` when there is no density.
pub async fn catch_up_daily(store: &Store) -> Result<Option<u64>, StoreError> {
    let Some(density) = store.table(TableName::Density).await? else { return Ok(None) };
    let version = density.version().unwrap_or(0);
    let covered = covered_version(store).await?;
    if covered == Some(version) {
        return Ok(store.table(TableName::DensityDaily).await?.and_then(|t| t.version()));
    }
    let known: HashSet<String> = match covered {
        Some(covered) => match store.table_at(TableName::Density, Some(covered)).await? {
            Some(old) => object_paths(&old)?.into_iter().collect(),
            None => HashSet::new(),
        },
        None => HashSet::new(),
    };
    let current = object_paths(&density)?;
    let present: HashSet<&str> = current.iter().map(String::as_str).collect();
    let changed: HashSet<i32> =
        known.iter().filter(|p| !present.contains(p.as_str())).filter_map(|p| file_day(p)).collect();
    let files: Vec<&String> =
        current.iter().filter(|p| !known.contains(*p) || file_day(p).is_some_and(|d| changed.contains(&d))).collect();
    tracing::info!(
        files = files.len(),
        changed_days = changed.len(),
        density_version = version,
        "Rolling up density by day."
    );
    let mut rollup = DailyRollup::start(store).await?;
    let read = async {
        if !changed.is_empty() {
            rollup.take_out_days(&changed).await?;
        }
        for file in &files {
            roll_up_file(&density, file, &mut rollup).await?;
            rollup.flush_if_full().await?;
        }
        Ok::<_, StoreError>(())
    };
    if let Err(error) = read.await {
        rollup.abandon().await;
        return Err(error);
    }
    Ok(Some(rollup.commit(version).await?))
}

impl DailyRollup {
    /// Takes the rows of `days` out of the rollup: each rollup file that
    /// may hold one (by its logged day range) is read, and if it does, its
    /// other rows join this commit and the file is removed by it.
    async fn take_out_days(&mut self, days: &HashSet<i32>) -> Result<(), StoreError> {
        let (first, last) = (days.iter().min().copied(), days.iter().max().copied());
        // Collected first: the snapshot's file iterator is not `Send`.
        let files: Vec<(String, Option<(i32, i32)>, Remove)> = {
            let snapshot = self.table.snapshot().map_err(StoreError::delta("density_daily"))?;
            snapshot
                .log_data()
                .into_iter()
                .map(|view| {
                    let range = view.stats().as_deref().and_then(day_range);
                    (view.object_store_path().to_string(), range, view.remove_action(true))
                })
                .collect()
        };
        for (path, range, remove) in files {
            if range.is_some_and(|(low, high)| first.is_none_or(|f| high < f) || last.is_none_or(|l| low > l)) {
                continue;
            }
            let rows = read_rollup_file(&self.table, &path).await?;
            if !rows.iter().any(|r| days.contains(&r.day)) {
                continue;
            }
            for row in rows.iter().filter(|r| !days.contains(&r.day)) {
                self.add(row.cell, row.day, row.devices, row.cell_hours);
            }
            self.flush_if_full().await?;
            self.removes.push(remove);
        }
        let mut days: Vec<i32> = days.iter().copied().collect();
        days.sort_unstable();
        let dates: Vec<String> =
            days.iter().map(|&d| stroom_core::days_to_date(d)).map(|d| format!("'{}'", d.format("%Y-%m-%d"))).collect();
        self.predicate = Some(format!("day IN ({})", dates.join(", ")));
        Ok(())
    }
}

/// The `day` range of a rollup file from its logged statistics.
fn day_range(stats: &str) -> Option<(i32, i32)> {
    let stats: Value = serde_json::from_str(stats).ok()?;
    let day = |side: &str| {
        let text = stats.get(side)?.get("day")?.as_str()?;
        let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        Some(stroom_core::date_to_days(date))
    };
    Some((day("minValues")?, day("maxValues")?))
}

/// The bytes of one file of `table` (`file`: its path in the table's
/// object store).
async fn file_bytes(table: &DeltaTable, file: &str) -> Result<bytes::Bytes, StoreError> {
    let problem = |problem: String| StoreError::Parquet { path: file.into(), problem };
    let found = table.object_store().get(&deltalake::Path::from(file)).await.map_err(|e| problem(e.to_string()))?;
    found.bytes().await.map_err(|e| problem(e.to_string()))
}

/// Every row of one rollup file.
async fn read_rollup_file(table: &DeltaTable, file: &str) -> Result<Vec<DailyRow>, StoreError> {
    let problem = |problem: String| StoreError::Parquet { path: file.into(), problem };
    let bytes = file_bytes(table, file).await?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.with_batch_size(65_536).build())
        .map_err(|e| problem(e.to_string()))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| problem(e.to_string()))?;
        let index = |name: &str| batch.schema().index_of(name).map_err(|e| problem(e.to_string()));
        let cells = batch.column(index("cell")?).as_primitive::<Int64Type>();
        let days = batch.column(index("day")?).as_primitive::<datafusion::arrow::datatypes::Date32Type>();
        let devices = batch.column(index("devices")?).as_primitive::<Int64Type>();
        let cell_hours = batch.column(index("cell_hours")?).as_primitive::<Int64Type>();
        if cells.null_count() + days.null_count() + devices.null_count() + cell_hours.null_count() > 0 {
            return Err(problem("a null in a rollup file".into()));
        }
        for i in 0..batch.num_rows() {
            rows.push(DailyRow {
                cell: cells.value(i) as u64,
                day: days.value(i),
                devices: devices.value(i).max(0) as u64,
                cell_hours: cell_hours.value(i).max(0) as u64,
            });
        }
    }
    Ok(rows)
}

fn object_paths(table: &DeltaTable) -> Result<Vec<String>, StoreError> {
    let snapshot = table.snapshot().map_err(StoreError::delta("density"))?;
    Ok(snapshot.log_data().into_iter().map(|add| add.object_store_path().to_string()).collect())
}

/// The batches of `columns` of one stored density file (`file`: its path in
/// the table's object store).
pub(crate) async fn density_file_columns(
    density: &DeltaTable,
    file: &str,
    columns: &[&str],
) -> Result<ParquetRecordBatchReader, StoreError> {
    let problem = |problem: String| StoreError::Parquet { path: file.into(), problem };
    let bytes = file_bytes(density, file).await?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| problem(e.to_string()))?;
    let indices: Vec<usize> = columns
        .iter()
        .map(|name| builder.schema().index_of(name).map_err(|_| problem(format!("no column {name} in a density file"))))
        .collect::<Result<_, _>>()?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    builder.with_projection(mask).with_batch_size(65_536).build().map_err(|e| problem(e.to_string()))
}

/// Adds the rows of one density file to the rollup. Density files are
/// sorted by (cell, ts) within their day, so the rollup sums each (cell,
/// day) in place; it sorts and merges any rest when it writes.
async fn roll_up_file(density: &DeltaTable, file: &str, rollup: &mut DailyRollup) -> Result<(), StoreError> {
    density_rows(density, file, &mut |o| rollup.add(o.cell, o.day, u64::from(o.count), 1)).await
}

/// Passes every row of one stored density file to `each`.
pub(crate) async fn density_rows(
    table: &DeltaTable,
    file: &str,
    each: &mut (dyn FnMut(Observation) + Send),
) -> Result<(), StoreError> {
    let problem = |problem: String| StoreError::Parquet { path: file.into(), problem };
    for batch in density_file_columns(table, file, &["cell", "ts", "count"]).await? {
        let batch = batch.map_err(|e| problem(e.to_string()))?;
        let index = |name: &str| batch.schema().index_of(name).map_err(|e| problem(e.to_string()));
        let cells = batch.column(index("cell")?).as_primitive::<Int64Type>();
        let ts = batch.column(index("ts")?).as_primitive::<TimestampMicrosecondType>();
        let counts = batch.column(index("count")?).as_primitive::<Int32Type>();
        if cells.null_count() + ts.null_count() + counts.null_count() > 0 {
            return Err(problem("a null in a density file".into()));
        }
        for i in 0..batch.num_rows() {
            let count = u64::try_from(counts.value(i)).unwrap_or(0);
            each(Observation::new(cells.value(i) as u64, ts.value(i), count));
        }
    }
    Ok(())
}

/// The rollup as it was when complete for `density_version` of density,
/// loaded at that version, if there is one.
pub async fn daily_table_for(store: &Store, density_version: u64) -> Result<Option<DeltaTable>, StoreError> {
    let Some(mut table) = store.table(TableName::DensityDaily).await? else { return Ok(None) };
    let latest = table.version().unwrap_or(0);
    let infos: Vec<_> = table.history(None).try_collect().await.map_err(StoreError::delta("density_daily"))?;
    // The history lists every commit, newest first: entry i is version latest − i.
    if infos.len() as u64 != latest + 1 {
        return Ok(None);
    }
    let found = infos.iter().enumerate().find_map(|(i, info)| {
        let covered = info.info.get(COMMIT_METADATA_KEY)?.get("density_version")?.as_u64()?;
        (covered == density_version).then_some(latest - i as u64)
    });
    let Some(version) = found else { return Ok(None) };
    if version != latest {
        table.load_version(version).await.map_err(StoreError::delta("density_daily"))?;
    }
    Ok(Some(table))
}
