//! Density ingest: provider files → validated observations → one count per
//! (cell, hour) → k-threshold → one Delta commit.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::arrow::array::{Date32Array, Int32Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use serde_json::{Value, json};
use stroom_core::{Cell, Resolution, day_of_micros};

use crate::input::{Observation, file_sha256, list_input_files, read_density_file};
use crate::schema::{MIN_K, density_columns, density_schema};
use crate::store::{COMMIT_METADATA_KEY, commit_metadata, ingested_hashes};
use crate::{Progress, Store, StoreError, TableName};

/// Rows per Parquet row group: small enough that the cell statistics of a
/// row group describe a narrow cell range, which is what spatial filters
/// prune on.
const ROW_GROUP_ROWS: usize = 32_768;
/// Rows per record batch handed to the Delta writer.
const WRITE_BATCH_ROWS: usize = 262_144;

/// How to ingest density files.
#[derive(Debug, Clone, Copy)]
pub struct DensityIngest {
    /// The H3 resolution at which cells are stored.
    pub resolution: Resolution,
    /// Counts below `k` per (cell, hour) are suppressed; at least [`MIN_K`].
    pub k: u32,
}

/// One input file of an ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub path: PathBuf,
    pub sha256: String,
    /// Data rows read, 0 when the file was skipped.
    pub rows: u64,
    /// The same content was ingested before (or earlier in this ingest), so
    /// the file was skipped.
    pub already_ingested: bool,
}

/// What a density ingest did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DensityReport {
    pub sources: Vec<SourceFile>,
    /// Data rows read from the files that were not skipped.
    pub rows_read: u64,
    /// Distinct (cell, hour) pairs after summing duplicates.
    pub cell_hours: u64,
    /// Distinct cells among the rows written.
    pub cells: u64,
    /// (cell, hour) pairs whose count was below k and were not written.
    pub suppressed: u64,
    /// Rows written to the table.
    pub rows_written: u64,
    /// Distinct days among the rows written.
    pub days: u64,
    /// Table version before the ingest (`None`: the table did not exist).
    pub version_before: Option<u64>,
    /// Table version after the ingest; equal to `version_before` when nothing
    /// was committed.
    pub version: Option<u64>,
}

/// Summed counts per (cell, hour), kept compact by sorting and merging once
/// the buffer doubles, so that memory follows distinct keys, not input rows.
#[derive(Debug, Default)]
struct Aggregator {
    entries: Vec<Observation>,
    next_compaction: usize,
}

const FIRST_COMPACTION: usize = 1 << 20;

fn sort_key(o: &Observation) -> (i32, u64, i64) {
    (day_of_micros(o.hour), o.cell, o.hour)
}

impl Aggregator {
    fn push(&mut self, observation: Observation) {
        self.entries.push(observation);
        if self.entries.len() >= self.next_compaction.max(FIRST_COMPACTION) {
            self.compact();
        }
    }

    fn compact(&mut self) {
        self.entries.sort_unstable_by_key(sort_key);
        let mut merged = 0usize;
        for i in 0..self.entries.len() {
            let current = self.entries[i];
            if merged > 0
                && self.entries[merged - 1].cell == current.cell
                && self.entries[merged - 1].hour == current.hour
            {
                self.entries[merged - 1].count += current.count;
            } else {
                self.entries[merged] = current;
                merged += 1;
            }
        }
        self.entries.truncate(merged);
        self.entries.shrink_to(merged * 2);
        self.next_compaction = merged * 2;
    }

    fn absorb(&mut self, mut other: Aggregator) {
        self.entries.append(&mut other.entries);
        self.compact();
    }
}

impl DensityIngest {
    /// Checks the options: `k` may be raised above [`MIN_K`], never lowered.
    pub fn new(resolution: Resolution, k: u32) -> Result<Self, StoreError> {
        if k < MIN_K {
            return Err(StoreError::Option(format!("k = {k} is below the minimum threshold {MIN_K}")));
        }
        Ok(Self { resolution, k })
    }

    /// Ingests the files at `paths` (files, or folders of `.csv`/`.parquet`
    /// files) into the store's `density` table as one commit. Any invalid
    /// input aborts the ingest before anything is written.
    pub async fn run(
        &self,
        store: &Store,
        paths: &[PathBuf],
        progress: Progress<'_>,
    ) -> Result<DensityReport, StoreError> {
        let ingest = Self::new(self.resolution, self.k)?;
        let existing = store.table(TableName::Density).await?;
        let version_before = existing.as_ref().and_then(|t| t.version());
        let mut seen = match &existing {
            Some(table) => {
                check_resolution(table, ingest.resolution).await?;
                ingested_hashes(table, TableName::Density).await?
            }
            None => HashSet::new(),
        };

        let mut sources = Vec::new();
        for path in list_input_files(paths)? {
            let sha256 = file_sha256(&path)?;
            let already_ingested = !seen.insert(sha256.clone());
            sources.push(SourceFile { path, sha256, rows: 0, already_ingested });
        }
        let to_read: Vec<usize> = (0..sources.len()).filter(|&i| !sources[i].already_ingested).collect();
        let (aggregate, rows) = read_all(&sources, &to_read, ingest.resolution, progress)?;
        for (&index, &count) in to_read.iter().zip(&rows) {
            sources[index].rows = count;
        }
        let rows_read = rows.iter().sum();
        let cell_hours = aggregate.len() as u64;

        let mut kept = aggregate;
        let before = kept.len();
        kept.retain(|o| o.count >= u64::from(ingest.k));
        let suppressed = (before - kept.len()) as u64;
        if let Some(o) = kept.iter().find(|o| o.count > i32::MAX as u64) {
            return Err(StoreError::CountOverflow {
                cell: Cell::from_u64(o.cell).map(|c| c.to_string()).unwrap_or_else(|_| o.cell.to_string()),
                hour: chrono::DateTime::from_timestamp_micros(o.hour).map(|t| t.to_rfc3339()).unwrap_or_default(),
                max: i64::from(i32::MAX),
            });
        }
        let cells = kept.iter().map(|o| o.cell).collect::<HashSet<_>>().len() as u64;
        let days = kept.iter().map(|o| day_of_micros(o.hour)).collect::<HashSet<_>>().len() as u64;
        let mut report = DensityReport {
            sources,
            rows_read,
            cell_hours,
            cells,
            suppressed,
            rows_written: kept.len() as u64,
            days,
            version_before,
            version: version_before,
        };
        if kept.is_empty() {
            tracing::info!(rows_read, suppressed, "Nothing to write: no new rows at or above k.");
            return Ok(report);
        }

        let mut table = store.open_or_create(TableName::Density, density_columns(), &["day"]).await?;
        let metadata = json!({
            "operation": "ingest-density",
            "resolution": ingest.resolution.get(),
            "k": ingest.k,
            "rows_read": rows_read,
            "rows_written": report.rows_written,
            "suppressed": suppressed,
            "sources": report.sources.iter().filter(|s| !s.already_ingested).map(|s| json!({
                "file": s.path.file_name().map(|n| n.to_string_lossy().into_owned()),
                "sha256": s.sha256,
                "rows": s.rows,
            })).collect::<Vec<_>>(),
        });
        let mut writer = RecordBatchWriter::for_table(&table)
            .map_err(StoreError::delta("density"))?
            .with_writer_properties(writer_properties())
            .with_commit_properties(
                CommitProperties::default().with_metadata([(COMMIT_METADATA_KEY.to_owned(), metadata)]),
            );
        for chunk in day_chunks(&kept) {
            writer.write(density_batch(chunk)?).await.map_err(StoreError::delta("density"))?;
        }
        let version = writer.flush_and_commit(&mut table).await.map_err(StoreError::delta("density"))?;
        report.version = Some(version);
        tracing::info!(rows = report.rows_written, cells, suppressed, version, "Ingested density.");
        Ok(report)
    }
}

/// Parses the selected sources on every core, each thread with its own
/// aggregator, and merges them. The first error by file order wins.
fn read_all(
    sources: &[SourceFile],
    to_read: &[usize],
    resolution: Resolution,
    progress: Progress<'_>,
) -> Result<(Vec<Observation>, Vec<u64>), StoreError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(to_read.len()).max(1);
    let next = AtomicUsize::new(0);
    let results: Vec<(Aggregator, Vec<(usize, Result<u64, StoreError>)>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut aggregator = Aggregator::default();
                    let mut outcomes = Vec::new();
                    loop {
                        let position = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&index) = to_read.get(position) else { break };
                        let outcome =
                            read_density_file(&sources[index].path, resolution, &mut |o| aggregator.push(o), progress);
                        let failed = outcome.is_err();
                        outcomes.push((position, outcome));
                        if failed {
                            // Stop early; nothing will be written anyway.
                            next.store(to_read.len(), Ordering::Relaxed);
                            break;
                        }
                    }
                    (aggregator, outcomes)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("an ingest thread panicked")).collect()
    });
    let mut merged = Aggregator::default();
    let mut outcomes = Vec::new();
    for (aggregator, thread_outcomes) in results {
        merged.absorb(aggregator);
        outcomes.extend(thread_outcomes);
    }
    outcomes.sort_by_key(|(position, _)| *position);
    let mut rows = Vec::with_capacity(outcomes.len());
    for (_, outcome) in outcomes {
        rows.push(outcome?);
    }
    merged.compact();
    Ok((merged.entries, rows))
}

/// The rows split at day boundaries and at [`WRITE_BATCH_ROWS`].
fn day_chunks(rows: &[Observation]) -> impl Iterator<Item = &[Observation]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        let first = rest.first()?;
        let day = day_of_micros(first.hour);
        let end = rest
            .iter()
            .take(WRITE_BATCH_ROWS)
            .position(|o| day_of_micros(o.hour) != day)
            .unwrap_or(rest.len().min(WRITE_BATCH_ROWS));
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

fn density_batch(rows: &[Observation]) -> Result<RecordBatch, StoreError> {
    let cells = Int64Array::from_iter_values(rows.iter().map(|o| o.cell as i64));
    let ts = TimestampMicrosecondArray::from_iter_values(rows.iter().map(|o| o.hour)).with_timezone("UTC");
    let counts = Int32Array::from_iter_values(rows.iter().map(|o| o.count as i32));
    let days = Date32Array::from_iter_values(rows.iter().map(|o| day_of_micros(o.hour)));
    Ok(RecordBatch::try_new(density_schema(), vec![Arc::new(cells), Arc::new(ts), Arc::new(counts), Arc::new(days)])?)
}

/// zstd, page statistics, and the sort order recorded in the file footer.
fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("3 is a valid zstd level")))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(Some(vec![
            SortingColumn { column_idx: 0, descending: false, nulls_first: false },
            SortingColumn { column_idx: 1, descending: false, nulls_first: false },
        ]))
        .build()
}

/// The storage resolution is fixed by the first ingest; later ingests must match.
async fn check_resolution(table: &deltalake::DeltaTable, requested: Resolution) -> Result<(), StoreError> {
    let stored = commit_metadata(table, TableName::Density)
        .await?
        .iter()
        .find_map(|m| m.get("resolution").and_then(Value::as_u64));
    match stored {
        Some(stored) if stored != u64::from(requested.get()) => {
            Err(StoreError::ResolutionMismatch { stored: stored as u8, requested: requested.get() })
        }
        _ => Ok(()),
    }
}

/// The storage resolution of the density table, if any ingest recorded one.
pub(crate) async fn stored_resolution(table: &deltalake::DeltaTable) -> Result<Option<u8>, StoreError> {
    Ok(commit_metadata(table, TableName::Density)
        .await?
        .iter()
        .find_map(|m| m.get("resolution").and_then(Value::as_u64))
        .map(|r| r as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregator_sums_duplicates_and_orders_by_day_cell_hour() {
        let hour = stroom_core::HOUR_MICROS;
        let day = stroom_core::DAY_MICROS;
        let mut aggregator = Aggregator::default();
        for o in [
            Observation { cell: 9, hour: day + hour, count: 1 },
            Observation { cell: 5, hour: day, count: 2 },
            Observation { cell: 9, hour: hour, count: 3 },
            Observation { cell: 5, hour: day, count: 4 },
        ] {
            aggregator.push(o);
        }
        aggregator.compact();
        assert_eq!(
            aggregator.entries,
            vec![
                Observation { cell: 9, hour, count: 3 },
                Observation { cell: 5, hour: day, count: 6 },
                Observation { cell: 9, hour: day + hour, count: 1 },
            ]
        );
        let chunks: Vec<_> = day_chunks(&aggregator.entries).map(<[_]>::len).collect();
        assert_eq!(chunks, vec![1, 2]);
    }
}
