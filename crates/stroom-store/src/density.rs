//! Density ingest: provider files → validated observations → one count per
//! (cell, hour) → k-threshold → one Delta commit.
//!
//! An ingest hashes its files and skips those whose content is already
//! committed. It parses the rest on every core, each thread into its own
//! aggregator: whenever the buffer doubles, observations are sorted by a
//! packed (day, cell, hour) key (a stable sort, which merges the runs
//! already in order) and equal keys summed, so that memory follows the
//! distinct (cell, hour) keys rather than the input rows. Past
//! [`DensityIngest::spill_entries`] keys in memory (shared among the
//! threads), sorted runs spill to temporary files on local disk. One pass over the merged keys then drops the counts
//! below k, counts what it sees and hands each day's rows to one of up to
//! eight Delta writers on their own tasks (a day always to the same
//! writer), whose files (zstd, plain pages, 32 Ki-row row groups, page
//! statistics, sort order recorded) land in one commit. The rollup of the
//! rows written follows (see `daily`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::arrow::array::{Date32Array, Int32Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use std::io::{Read, Seek, Write};

use deltalake::kernel::Action;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use serde_json::{Value, json};
use stroom_core::{Cell, Resolution};

use crate::daily::DailyRollup;
use crate::input::{Observation, file_sha256, list_input_files, read_density_file};
use crate::overlap::DeliveredKeys;
use crate::replace::{CoveredHours, Replacement};
use crate::schema::{MIN_K, density_columns, density_schema};
use crate::store::{
    COMMIT_ATTEMPTS, COMMIT_METADATA_KEY, commit_metadata, ingested_hashes, is_lost_race, remove_uncommitted,
    sorted_writer_properties,
};
use crate::{Progress, Store, StoreError, TableName};

/// Rows per Parquet row group: small enough that the cell statistics of a
/// row group describe a narrow cell range, which is what spatial filters
/// prune on.
const ROW_GROUP_ROWS: usize = 32_768;
/// Rows per record batch handed to the Delta writer.
pub(crate) const WRITE_BATCH_ROWS: usize = 262_144;
/// Rows written between closing the open files of the partitions.
const FLUSH_ROWS: usize = 4_000_000;

/// How to ingest density files.
#[derive(Debug, Clone, Copy)]
pub struct DensityIngest {
    /// The H3 resolution at which cells are stored.
    pub resolution: Resolution,
    /// Counts below `k` per (cell, hour) are suppressed; at least [`MIN_K`].
    pub k: u32,
    /// Distinct (cell, hour) keys held in memory (24 bytes each) before
    /// sorted runs spill to temporary files: the memory bound of an ingest.
    pub spill_entries: usize,
    /// What the delivery does to (cell, hour) counts already stored.
    pub on_stored: OnStored,
}

/// What a density delivery does to the (cell, hour) counts already stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnStored {
    /// A delivery that brings a stored (cell, hour) again is refused, so
    /// that nothing is counted twice.
    #[default]
    Refuse,
    /// Its counts are added to the stored ones (a supplementary delivery:
    /// another provider's devices in the same cells and hours).
    Add,
    /// It is the whole truth of every hour it covers (a corrected
    /// delivery): every stored cell-hour of those hours is replaced, in the
    /// same commit; cells it does not bring for such an hour (or brings
    /// below k) are no longer stored. A stored count it would move by less
    /// than k stays as it was, and is counted as held.
    Replace,
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
    /// Stored (cell, hour) rows replaced ([`OnStored::Replace`]): the rows of
    /// the delivery's hours that the table held before.
    pub replaced: u64,
    /// Hours the delivery covers (counted with [`OnStored::Replace`] only).
    pub hours: u64,
    /// Stored (cell, hour) counts that a correction would have moved by
    /// less than k, kept as they were ([`OnStored::Replace`]): the versions
    /// before and after would differ by a count below k.
    pub held: u64,
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

/// Distinct (cell, hour) keys held in memory before sorted runs spill to
/// temporary files, unless configured (24 bytes each: about 200 MB).
pub const DEFAULT_SPILL_ENTRIES: usize = 8 << 20;

/// The (day, cell, hour) order packed into one integer, so that a comparison
/// is two machine compares: the day (sign bit flipped) in the top 32 bits,
/// the cell's low 52 bits (the top 12 hold mode and resolution, the same for
/// every cell of an ingest), and the hour's offset within its day (under
/// 2^37 microseconds).
fn sort_key(o: &Observation) -> u128 {
    const CELL_BITS: u64 = (1 << 52) - 1;
    let offset = o.hour.wrapping_sub(i64::from(o.day).wrapping_mul(stroom_core::DAY_MICROS)) as u64;
    (u128::from(o.day as u32 ^ 0x8000_0000) << 96) | (u128::from(o.cell & CELL_BITS) << 44) | u128::from(offset)
}

impl Aggregator {
    fn push(&mut self, observation: Observation) {
        self.entries.push(observation);
        if self.entries.len() >= self.next_compaction.max(FIRST_COMPACTION) {
            self.compact();
        }
    }

    fn compact(&mut self) {
        // A stable sort finds the runs already in order (the compacted
        // prefix, and rows that providers deliver hour by hour in cell
        // order) and merges them instead of sorting from scratch.
        self.entries.sort_by_key(sort_key);
        let mut merged = 0usize;
        for i in 0..self.entries.len() {
            let current = self.entries[i];
            if merged > 0
                && self.entries[merged - 1].cell == current.cell
                && self.entries[merged - 1].hour == current.hour
            {
                self.entries[merged - 1].count = self.entries[merged - 1].count.saturating_add(current.count);
            } else {
                self.entries[merged] = current;
                merged += 1;
            }
        }
        self.entries.truncate(merged);
        self.entries.shrink_to(merged * 2);
        self.next_compaction = merged * 2;
    }

    /// Whether the buffer has grown past `budget` entries.
    fn should_spill(&self, budget: usize) -> bool {
        self.entries.len() >= budget
    }
}

/// Sorted runs of aggregated observations written to temporary files when
/// the distinct keys outgrow memory; merged back in key order at the end.
#[derive(Debug, Default)]
struct Runs {
    files: Vec<std::fs::File>,
}

const RECORD_BYTES: usize = 24;

impl Runs {
    fn spill(&mut self, aggregator: &mut Aggregator) -> Result<(), StoreError> {
        aggregator.compact();
        let mut file = tempfile_in_temp_dir()?;
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, &mut file);
        for o in &aggregator.entries {
            let mut record = [0u8; RECORD_BYTES];
            record[..8].copy_from_slice(&o.cell.to_le_bytes());
            record[8..16].copy_from_slice(&o.hour.to_le_bytes());
            record[16..20].copy_from_slice(&o.count.to_le_bytes());
            record[20..].copy_from_slice(&o.day.to_le_bytes());
            writer.write_all(&record).map_err(spill_error)?;
        }
        writer.flush().map_err(spill_error)?;
        drop(writer);
        file.seek(std::io::SeekFrom::Start(0)).map_err(spill_error)?;
        self.files.push(file);
        aggregator.entries = Vec::new();
        aggregator.next_compaction = 0;
        Ok(())
    }

    /// The runs and the in-memory rest merged into one stream sorted by
    /// (day, cell, hour), equal keys summed, in chunks.
    fn merged<'a>(&'a mut self, rest: &'a [Observation]) -> Result<Merged<'a>, StoreError> {
        let mut readers = Vec::with_capacity(self.files.len());
        for file in &mut self.files {
            file.seek(std::io::SeekFrom::Start(0)).map_err(spill_error)?;
            readers.push(RunReader::new(file.try_clone().map_err(spill_error)?));
        }
        let heads = readers
            .iter_mut()
            .map(|r| r.next().map(|head| head.map(|o| (sort_key(&o), o))))
            .collect::<Result<_, _>>()?;
        Ok(Merged { readers, heads, rest, done: false })
    }
}

/// The merged stream of [`Runs::merged`].
struct Merged<'a> {
    readers: Vec<RunReader>,
    /// The next observation of each run, with its sort key.
    heads: Vec<Option<(u128, Observation)>>,
    rest: &'a [Observation],
    done: bool,
}

impl Merged<'_> {
    /// The run holding the smallest head, and that key.
    fn best_run(&self) -> Option<(usize, u128)> {
        let mut best: Option<(usize, u128)> = None;
        for (i, head) in self.heads.iter().enumerate() {
            if let Some((key, _)) = head {
                if best.is_none_or(|(_, b)| *key < b) {
                    best = Some((i, *key));
                }
            }
        }
        best
    }

    fn next_observation(&mut self) -> Result<Option<Observation>, StoreError> {
        let best = self.best_run();
        let from_rest = match (self.rest.first(), best) {
            (Some(r), Some((_, b))) => sort_key(r) < b,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if from_rest {
            let (first, tail) = self.rest.split_first().expect("checked above");
            self.rest = tail;
            return Ok(Some(*first));
        }
        match best {
            Some((i, _)) => {
                let next = self.readers[i].next()?.map(|o| (sort_key(&o), o));
                Ok(std::mem::replace(&mut self.heads[i], next).map(|(_, o)| o))
            }
            None => Ok(None),
        }
    }

    /// Takes the longest prefix of the in-memory rest that sorts before
    /// every run head, at most `limit` observations: no merging needed.
    fn rest_prefix(&mut self, limit: usize) -> &[Observation] {
        let bound = self.best_run().map(|(_, key)| key);
        let take = match bound {
            None => self.rest.len().min(limit),
            Some(bound) => self.rest.iter().take(limit).take_while(|o| sort_key(o) < bound).count(),
        };
        let (prefix, tail) = self.rest.split_at(take);
        self.rest = tail;
        prefix
    }
}

impl Iterator for Merged<'_> {
    type Item = Result<Vec<Observation>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut chunk: Vec<Observation> = Vec::with_capacity(WRITE_BATCH_ROWS.min(1 << 16));
        loop {
            // Stretches of the rest that come before every run are copied
            // whole (all of it when nothing spilled).
            let room = WRITE_BATCH_ROWS.saturating_sub(chunk.len()).max(1);
            let prefix = self.rest_prefix(room);
            if let Some((first, tail)) = prefix.split_first() {
                push_summed(&mut chunk, *first);
                chunk.extend_from_slice(tail);
            } else {
                let next = match self.next_observation() {
                    Ok(Some(o)) => o,
                    Ok(None) => {
                        self.done = true;
                        break;
                    }
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                };
                push_summed(&mut chunk, next);
            }
            // Cut only between keys, so that no key spans two chunks.
            if chunk.len() >= WRITE_BATCH_ROWS {
                let peek_same = self.peek_key() == chunk.last().map(|o| (o.cell, o.hour));
                if !peek_same {
                    break;
                }
            }
        }
        if chunk.is_empty() { None } else { Some(Ok(chunk)) }
    }
}

/// Appends an observation, summing it into the last one when the keys match.
fn push_summed(chunk: &mut Vec<Observation>, next: Observation) {
    match chunk.last_mut() {
        Some(last) if last.cell == next.cell && last.hour == next.hour => {
            last.count = last.count.saturating_add(next.count)
        }
        _ => chunk.push(next),
    }
}

impl Merged<'_> {
    /// The key of the next observation, without taking it.
    fn peek_key(&self) -> Option<(u64, i64)> {
        let run = self.best_run().and_then(|(i, key)| self.heads[i].map(|(_, o)| (key, o)));
        let next = match (run, self.rest.first()) {
            (Some((key, o)), Some(r)) => Some(if key <= sort_key(r) { o } else { *r }),
            (Some((_, o)), None) => Some(o),
            (None, rest) => rest.copied(),
        };
        next.map(|o| (o.cell, o.hour))
    }
}

struct RunReader {
    reader: std::io::BufReader<std::fs::File>,
}

impl RunReader {
    fn new(file: std::fs::File) -> Self {
        Self { reader: std::io::BufReader::with_capacity(1 << 20, file) }
    }

    fn next(&mut self) -> Result<Option<Observation>, StoreError> {
        let mut record = [0u8; RECORD_BYTES];
        match self.reader.read_exact(&mut record) {
            Ok(()) => Ok(Some(Observation {
                cell: u64::from_le_bytes(record[..8].try_into().expect("8 bytes")),
                hour: i64::from_le_bytes(record[8..16].try_into().expect("8 bytes")),
                count: u32::from_le_bytes(record[16..20].try_into().expect("4 bytes")),
                day: i32::from_le_bytes(record[20..].try_into().expect("4 bytes")),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(spill_error(e)),
        }
    }
}

fn spill_error(source: std::io::Error) -> StoreError {
    StoreError::Io { path: std::env::temp_dir(), source }
}

/// An anonymous temporary file (removed when closed).
fn tempfile_in_temp_dir() -> Result<std::fs::File, StoreError> {
    tempfile::tempfile().map_err(spill_error)
}

impl DensityIngest {
    /// Checks the options: `k` may be raised above [`MIN_K`], never lowered.
    pub fn new(resolution: Resolution, k: u32) -> Result<Self, StoreError> {
        if k < MIN_K {
            return Err(StoreError::Option(format!("k = {k} is below the minimum threshold {MIN_K}")));
        }
        Ok(Self { resolution, k, spill_entries: DEFAULT_SPILL_ENTRIES, on_stored: OnStored::Refuse })
    }

    /// Ingests the files at `paths` (files, or folders of `.csv`/`.parquet`
    /// files) into the store's `density` table as one commit. Invalid input
    /// found while reading aborts the ingest before anything is written; an
    /// error while writing (a count beyond the stored range, a writer or
    /// rollup error) removes the files written and the tables this ingest
    /// created, and commits nothing.
    pub async fn run(
        &self,
        store: &Store,
        paths: &[PathBuf],
        progress: Progress<'_>,
    ) -> Result<DensityReport, StoreError> {
        let started = std::time::Instant::now();
        let ingest = Self {
            spill_entries: self.spill_entries.max(1),
            on_stored: self.on_stored,
            ..Self::new(self.resolution, self.k)?
        };
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
        let (mut runs, rest, rows) = read_all(&sources, &to_read, &ingest, progress)?;
        for (&index, &count) in to_read.iter().zip(&rows) {
            sources[index].rows = count;
        }
        let rows_read = rows.iter().sum();

        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "Read and aggregated.");

        // One pass over the merged keys: the rows at or above k go to the
        // writers, day by day; the figures are counted on the way. The table
        // and the writers start with the first row to write.
        let k = u64::from(ingest.k);
        let (mut cell_hours, mut suppressed, mut rows_written) = (0u64, 0u64, 0u64);
        let mut cells = HashSet::new();
        let mut days = HashSet::new();
        // Keys come in (day, cell, hour) order: a set is touched only when
        // the cell or the day changes.
        let (mut last_cell, mut last_day) = (None, None);
        let mut table = None;
        let mut writers: Option<DayWriters> = None;
        // The daily rollup of the rows written comes along when the rollup
        // is complete for the version this ingest builds on; otherwise it
        // catches up from the files after the commit.
        // A replacement changes stored days, which the rollup recomputes
        // after the commit.
        let replace = ingest.on_stored == OnStored::Replace;
        let append_rollup = !replace && crate::daily::is_current(store, version_before).await?;
        let mut delivered = DeliveredKeys::start(existing.as_ref().filter(|_| ingest.on_stored == OnStored::Refuse))?;
        // A correction first learns the hours it covers and the counts
        // stored for them, so that it can hold the changes below k.
        let mut covered = CoveredHours::default();
        let mut stored = None;
        if replace {
            for chunk in runs.merged(&rest)? {
                for o in &chunk? {
                    covered.add(o);
                }
            }
            if let Some(existing) = &existing {
                stored = Some(crate::replace::stored_counts(existing, &covered).await?);
            }
        }
        let mut held: HashSet<(u64, i64)> = HashSet::new();
        let mut rollup: Option<DailyRollup> = None;
        // Any error stops the pass and is handled below, after the writers
        // are finished, so that whatever was written is removed.
        let pass: Result<(), StoreError> = async {
            for chunk in runs.merged(&rest)? {
                let mut chunk = chunk?;
                let merged = chunk.len();
                for o in &chunk {
                    delivered.add(o);
                }
                chunk.retain(|o| u64::from(o.count) >= k);
                cell_hours += merged as u64;
                suppressed += (merged - chunk.len()) as u64;
                if let Some(stored) = &stored {
                    // A stored count that a correction moves by less than k
                    // stays: the two versions would differ by a count below k.
                    chunk.retain(|o| {
                        let change = stored.get(&(o.cell, o.hour)).map(|&s| s.abs_diff(u64::from(o.count)));
                        let small = change.is_some_and(|c| c > 0 && c < k);
                        if small {
                            held.insert((o.cell, o.hour));
                        }
                        !small
                    });
                }
                for o in &chunk {
                    if u64::from(o.count) > i32::MAX as u64 {
                        return Err(StoreError::CountOverflow {
                            cell: Cell::from_u64(o.cell).map(|c| c.to_string()).unwrap_or_else(|_| o.cell.to_string()),
                            hour: chrono::DateTime::from_timestamp_micros(o.hour)
                                .map(|t| t.to_rfc3339())
                                .unwrap_or_default(),
                            max: i64::from(i32::MAX),
                        });
                    }
                    if last_cell != Some(o.cell) {
                        cells.insert(o.cell);
                        last_cell = Some(o.cell);
                    }
                    if last_day != Some(o.day) {
                        days.insert(o.day);
                        last_day = Some(o.day);
                    }
                }
                rows_written += chunk.len() as u64;
                if chunk.is_empty() {
                    continue;
                }
                if writers.is_none() {
                    let opened =
                        table.insert(store.open_or_create(TableName::Density, density_columns(), &["day"]).await?);
                    writers = Some(DayWriters::start(opened)?);
                    if append_rollup {
                        rollup = Some(DailyRollup::start(store).await?);
                    }
                }
                let writers = writers.as_ref().expect("started above");
                for day in day_chunks(&chunk) {
                    if !writers.send(day[0].day, density_batch(day)?).await {
                        // The writer's own error, from `finish`, comes first.
                        return Err(StoreError::Option("a density writer stopped".into()));
                    }
                }
                if let Some(rollup) = rollup.as_mut() {
                    for o in &chunk {
                        rollup.add(o.cell, o.day, u64::from(o.count), 1);
                    }
                    rollup.flush_if_full().await?;
                }
            }
            Ok(())
        }
        .await;
        let (adds, write_error) = match writers {
            Some(writers) => writers.finish().await,
            None => (Vec::new(), None),
        };
        if let Some(error) = write_error.or(pass.err()) {
            // Nothing is committed; the files already written are not part
            // of the table, and are removed.
            if let Some(table) = &table {
                remove_uncommitted(table, &adds).await;
            }
            if let Some(rollup) = rollup {
                rollup.abandon().await;
            }
            // Tables that this ingest created (empty, with only their
            // creation commit) go too: the store is left as it was.
            if version_before.is_none() && table.is_some() {
                remove_new_table(store, TableName::Density).await;
                if append_rollup {
                    remove_new_table(store, TableName::DensityDaily).await;
                }
            }
            return Err(error);
        }
        let cells = cells.len() as u64;
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), files = adds.len(), "Written.");
        let mut report = DensityReport {
            sources,
            rows_read,
            cell_hours,
            cells,
            suppressed,
            rows_written,
            replaced: 0,
            held: held.len() as u64,
            hours: covered.hours(),
            days: days.len() as u64,
            version_before,
            version: version_before,
        };
        // A correction whose every count is below k still takes out the
        // stored rows of its hours.
        let table = match (table, &existing) {
            (None, Some(existing)) if replace && !covered.is_empty() => Some(existing.clone()),
            (table, _) => table,
        };
        let Some(mut table) = table else {
            // Nothing would be counted twice, but a re-delivery is refused
            // all the same, whatever its counts.
            if let Some(existing) = &existing {
                delivered.check(existing).await?;
            }
            tracing::info!(rows_read, suppressed, "Nothing to write: no new rows at or above k.");
            catch_up_rollup(store, None).await;
            return Ok(report);
        };
        let metadata = json!({
            "operation": "ingest-density",
            "resolution": ingest.resolution.get(),
            "k": ingest.k,
            "rows_read": rows_read,
            "rows_written": rows_written,
            "suppressed": suppressed,
            "sources": report.sources.iter().filter(|s| !s.already_ingested).map(|s| json!({
                "file": s.path.file_name().map(|n| n.to_string_lossy().into_owned()),
                "sha256": s.sha256,
                "rows": s.rows,
            })).collect::<Vec<_>>(),
        });
        let operation = |replacement: Option<&Replacement>| DeltaOperation::Write {
            mode: if replacement.is_some() { SaveMode::Overwrite } else { SaveMode::Append },
            partition_by: Some(vec!["day".to_owned()]),
            predicate: replacement.map(|_| covered.predicate()),
        };
        // The commit lands on the latest version, and only if no source of
        // this ingest was committed meanwhile by another writer (appends of
        // other files commute with this one); the table is read again
        // before each attempt, and the commit itself never retries on a
        // version it did not check. A replacement is worked out again on
        // each attempt, on the version it commits on.
        let ours: HashSet<&str> =
            report.sources.iter().filter(|s| !s.already_ingested).map(|s| s.sha256.as_str()).collect();
        let mut attempt = 1;
        let version = loop {
            let base = table.version();
            let checked = async {
                let taken: Vec<String> = ingested_hashes(&table, TableName::Density)
                    .await?
                    .into_iter()
                    .filter(|h| ours.contains(h.as_str()))
                    .collect();
                if let Some(taken) = taken.first() {
                    return Err(StoreError::Option(format!(
                        "another ingest committed the same source (sha256 {}) while this one ran; nothing was written by this one",
                        &taken[..12.min(taken.len())]
                    )));
                }
                // A (cell, hour) already stored, by an earlier delivery or
                // by a writer that committed meanwhile, is refused.
                delivered.check(&table).await?;
                if !replace {
                    return Ok(None);
                }
                // The counts held were compared with the version read first;
                // a writer that changed them since makes the correction stale.
                if attempt > 1 && stored.is_some() {
                    let now = crate::replace::stored_counts(&table, &covered).await?;
                    if Some(&now) != stored.as_ref() {
                        return Err(StoreError::Option(
                            "another writer changed the stored counts of the corrected hours while this correction \
                             ran; nothing was written by this one (run it again)"
                                .into(),
                        ));
                    }
                }
                crate::replace::take_out(&table, &covered, &held).await.map(Some)
            };
            let replacement = match checked.await {
                Ok(replacement) => replacement,
                Err(error) => {
                    remove_uncommitted(&table, &adds).await;
                    if let Some(rollup) = rollup {
                        rollup.abandon().await;
                    }
                    return Err(error);
                }
            };
            if adds.is_empty() && replacement.as_ref().is_none_or(|r| r.removes.is_empty()) {
                // A correction below k of hours that hold nothing.
                tracing::info!(
                    rows_read,
                    suppressed,
                    "Nothing to write: no stored rows to replace, none at or above k."
                );
                return Ok(report);
            }
            let mut metadata = metadata.clone();
            if let Some(replacement) = &replacement {
                metadata["replaced"] = json!({ "hours": covered.hours(), "cell_hours": replacement.cell_hours });
            }
            let actions: Vec<Action> = adds
                .iter()
                .cloned()
                .map(Action::Add)
                .chain(replacement.iter().flat_map(Replacement::actions))
                .collect();
            let snapshot = table.snapshot().map_err(StoreError::delta("density"))?;
            let committed = CommitBuilder::from(
                CommitProperties::default()
                    .with_metadata([(COMMIT_METADATA_KEY.to_owned(), metadata)])
                    .with_max_retries(0),
            )
            .with_actions(actions)
            .build(Some(snapshot), table.log_store(), operation(replacement.as_ref()))
            .await;
            match committed {
                Ok(committed) => {
                    report.replaced = replacement.map_or(0, |r| r.cell_hours);
                    break committed.version();
                }
                Err(error) if is_lost_race(&error) && attempt < COMMIT_ATTEMPTS => {
                    tracing::info!(
                        attempt,
                        ?base,
                        "Another writer committed to density first; checking again on top of it."
                    );
                    if let Some(replacement) = replacement {
                        replacement.abandon(&table).await;
                    }
                    attempt += 1;
                    table.update_state().await.map_err(StoreError::delta("density"))?;
                }
                Err(error) => {
                    remove_uncommitted(&table, &adds).await;
                    if let Some(replacement) = replacement {
                        replacement.abandon(&table).await;
                    }
                    if let Some(rollup) = rollup {
                        rollup.abandon().await;
                    }
                    return Err(StoreError::Delta { table: "density".into(), source: error });
                }
            }
        };
        table.update_state().await.map_err(StoreError::delta("density"))?;
        report.version = Some(version);
        // The rollup of this ingest's rows completes the rollup only when
        // this commit directly follows the version the rollup was complete
        // for; otherwise it is dropped, and the rollup catches up from the
        // files.
        let follows = version == version_before.map_or(1, |v| v + 1);
        let rollup = match rollup {
            Some(rollup) if !follows => {
                rollup.abandon().await;
                None
            }
            other => other,
        };
        catch_up_rollup(store, rollup.map(|r| (r, version))).await;
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "Committed.");
        tracing::info!(rows = report.rows_written, cells, suppressed, version, "Ingested density.");
        Ok(report)
    }
}

/// Parses the selected sources on every core, each thread with its own
/// aggregator that spills sorted runs when it outgrows its share of the
/// budget. Returns the runs, the sorted in-memory rest and the rows read per
/// source. The first error by file order wins.
fn read_all(
    sources: &[SourceFile],
    to_read: &[usize],
    ingest: &DensityIngest,
    progress: Progress<'_>,
) -> Result<(Runs, Vec<Observation>, Vec<u64>), StoreError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(to_read.len()).max(1);
    let budget = (ingest.spill_entries / threads).max(1);
    let resolution = ingest.resolution;
    let next = AtomicUsize::new(0);
    let runs = std::sync::Mutex::new(Runs::default());
    type Outcomes = Vec<(usize, Result<u64, StoreError>)>;
    let results: Vec<(Aggregator, Outcomes)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut aggregator = Aggregator::default();
                    let mut outcomes = Vec::new();
                    loop {
                        let position = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&index) = to_read.get(position) else { break };
                        let mut spill_failure = None;
                        let mut outcome = read_density_file(
                            &sources[index].path,
                            resolution,
                            &mut |o| {
                                aggregator.push(o);
                                // Within a large file too: spill once compaction no longer keeps the buffer under budget.
                                if aggregator.entries.len() >= 2 * budget && spill_failure.is_none() {
                                    aggregator.compact();
                                    if aggregator.should_spill(budget) {
                                        let mut runs = runs.lock().expect("no thread panicked holding the runs");
                                        spill_failure = runs.spill(&mut aggregator).err();
                                    }
                                }
                            },
                            progress,
                        );
                        if let Some(error) = spill_failure {
                            outcome = Err(error);
                        }
                        if outcome.is_ok() && aggregator.should_spill(budget) {
                            let spilled =
                                runs.lock().expect("no thread panicked holding the runs").spill(&mut aggregator);
                            if let Err(error) = spilled {
                                outcome = Err(error);
                            }
                        }
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
    let mut rest = Aggregator::default();
    let mut outcomes = Vec::new();
    for (mut aggregator, thread_outcomes) in results {
        rest.entries.append(&mut aggregator.entries);
        outcomes.extend(thread_outcomes);
    }
    outcomes.sort_by_key(|(position, _)| *position);
    let mut rows = Vec::with_capacity(outcomes.len());
    for (_, outcome) in outcomes {
        rows.push(outcome?);
    }
    rest.compact();
    Ok((runs.into_inner().expect("no thread panicked holding the runs"), rest.entries, rows))
}

/// Commits the rollup of an ingest's rows as complete for `version` of
/// density, or, without one, rolls up what the rollup does not cover yet. A
/// failure leaves the rollup behind density, which readers detect (they read
/// the hourly table instead) and the next ingest repairs; it does not fail
/// the ingest, whose data is committed.
async fn catch_up_rollup(store: &Store, rollup: Option<(DailyRollup, u64)>) {
    let outcome = match rollup {
        Some((rollup, version)) => rollup.commit(version).await.map(Some),
        None => crate::daily::catch_up_daily(store).await,
    };
    if let Err(error) = outcome {
        let error = &error as &dyn std::error::Error;
        tracing::warn!(error, "The daily rollup of density was not updated; daily series read the hourly table.");
    }
}

/// Delta writers on their own tasks, one file set each, so that encoding
/// and compression run on every core; a day's rows always go to the same
/// writer, so that a day partition gets one file per flush.
struct DayWriters {
    senders: Vec<tokio::sync::mpsc::Sender<RecordBatch>>,
    /// Each writer's files, and its error if it stopped on one.
    tasks: Vec<tokio::task::JoinHandle<(Vec<deltalake::kernel::Add>, Option<StoreError>)>>,
}

impl DayWriters {
    fn start(table: &deltalake::DeltaTable) -> Result<Self, StoreError> {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
        let mut senders = Vec::with_capacity(count);
        let mut tasks = Vec::with_capacity(count);
        for _ in 0..count {
            let mut writer = RecordBatchWriter::for_table(table)
                .map_err(StoreError::delta("density"))?
                .with_writer_properties(sorted_writer_properties(ROW_GROUP_ROWS));
            let (sender, mut receiver) = tokio::sync::mpsc::channel::<RecordBatch>(2);
            senders.push(sender);
            tasks.push(tokio::spawn(async move {
                let mut adds = Vec::new();
                let error = write_batches(&mut writer, &mut receiver, &mut adds, FLUSH_ROWS / count).await.err();
                (adds, error)
            }));
        }
        Ok(Self { senders, tasks })
    }

    /// Hands one day's batch to its writer; `false` when that writer has
    /// stopped on an error, which [`Self::finish`] returns.
    async fn send(&self, day: i32, batch: RecordBatch) -> bool {
        let index = day.rem_euclid(self.senders.len() as i32) as usize;
        self.senders[index].send(batch).await.is_ok()
    }

    /// Closes every writer; returns every file written (also by a writer
    /// that failed later, so that a failed ingest can remove them) and the
    /// first error.
    async fn finish(self) -> (Vec<deltalake::kernel::Add>, Option<StoreError>) {
        drop(self.senders);
        let mut adds = Vec::new();
        let mut first_error = None;
        for task in self.tasks {
            let (written, error) = task.await.expect("a density writer panicked");
            adds.extend(written);
            if let Some(error) = error {
                first_error.get_or_insert(error);
            }
        }
        (adds, first_error)
    }
}

/// One writer's loop: writes the batches it receives, closing its open files
/// every `flush_rows` rows so that buffered row groups of many day
/// partitions do not pile up in memory.
async fn write_batches(
    writer: &mut RecordBatchWriter,
    receiver: &mut tokio::sync::mpsc::Receiver<RecordBatch>,
    adds: &mut Vec<deltalake::kernel::Add>,
    flush_rows: usize,
) -> Result<(), StoreError> {
    let mut unflushed = 0usize;
    while let Some(batch) = receiver.recv().await {
        unflushed += batch.num_rows();
        writer.write(batch).await.map_err(StoreError::delta("density"))?;
        if unflushed >= flush_rows {
            adds.extend(writer.flush().await.map_err(StoreError::delta("density"))?);
            unflushed = 0;
        }
    }
    adds.extend(writer.flush().await.map_err(StoreError::delta("density"))?);
    Ok(())
}

/// Removes a table created by a failed ingest: every object under it (best
/// effort), and its folder on a local store.
async fn remove_new_table(store: &Store, name: TableName) {
    use datafusion::object_store::ObjectStoreExt;
    use futures::TryStreamExt;
    if let Ok(Some(table)) = store.table(name).await {
        let objects = table.object_store();
        let listed: Result<Vec<_>, _> = objects.list(None).try_collect().await;
        for meta in listed.unwrap_or_default() {
            if let Err(error) = objects.delete(&meta.location).await {
                tracing::warn!(table = name.as_str(), %error, "Could not remove a file of a table the failed ingest created.");
            }
        }
    }
    if let Ok(path) = store.table_url(name).to_file_path() {
        let _ = std::fs::remove_dir_all(path);
    }
}

/// The rows split at day boundaries and at [`WRITE_BATCH_ROWS`].
fn day_chunks(rows: &[Observation]) -> impl Iterator<Item = &[Observation]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        let first = rest.first()?;
        let day = first.day;
        let end =
            rest.iter().take(WRITE_BATCH_ROWS).position(|o| o.day != day).unwrap_or(rest.len().min(WRITE_BATCH_ROWS));
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

pub(crate) fn density_batch(rows: &[Observation]) -> Result<RecordBatch, StoreError> {
    let cells = Int64Array::from_iter_values(rows.iter().map(|o| o.cell as i64));
    let ts = TimestampMicrosecondArray::from_iter_values(rows.iter().map(|o| o.hour)).with_timezone("UTC");
    let counts = Int32Array::from_iter_values(rows.iter().map(|o| o.count as i32));
    let days = Date32Array::from_iter_values(rows.iter().map(|o| o.day));
    Ok(RecordBatch::try_new(density_schema(), vec![Arc::new(cells), Arc::new(ts), Arc::new(counts), Arc::new(days)])?)
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

impl Store {
    /// The H3 resolution of the density table's cells; `None` before the
    /// first density ingest.
    pub async fn density_resolution(&self) -> Result<Option<Resolution>, StoreError> {
        let Some(table) = self.table(TableName::Density).await? else { return Ok(None) };
        match stored_resolution(&table).await? {
            Some(r) => Resolution::new(i64::from(r)).map(Some).map_err(|e| StoreError::Option(e.to_string())),
            None => Ok(None),
        }
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
            Observation::new(9, day + hour, 1),
            Observation::new(5, day, 2),
            Observation::new(9, hour, 3),
            Observation::new(5, day, 4),
        ] {
            aggregator.push(o);
        }
        aggregator.compact();
        assert_eq!(
            aggregator.entries,
            vec![Observation::new(9, hour, 3), Observation::new(5, day, 6), Observation::new(9, day + hour, 1),]
        );
        let chunks: Vec<_> = day_chunks(&aggregator.entries).map(<[_]>::len).collect();
        assert_eq!(chunks, vec![1, 2]);
    }
}
