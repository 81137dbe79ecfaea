//! Corrected deliveries: `--replace` makes a delivery the whole truth of
//! every hour it covers. The stored rows of those hours are taken out of
//! their files (each density file of a covered day that holds such a row is
//! rewritten without them) and the delivery's rows go in, all in one
//! commit: a Delta overwrite by predicate, so that the earlier version stays
//! readable by time travel and vintage backtests see what was known when.
//! A cell of a covered hour that the correction does not bring (or brings
//! below k) is no longer stored. A stored count that the correction would
//! move by less than k (20 to 23, with k = 15) is held as it was: the
//! version before and the version after would otherwise differ, in that
//! (cell, hour), by a count below k, which anyone who reads both (time
//! travel, or the API before and after) could take as a group of fewer
//! than k devices. The ingest compares against [`stored_counts`] before it
//! writes, and [`take_out`] keeps the rows it held.

use std::collections::{BTreeMap, HashMap, HashSet};

use deltalake::DeltaTable;
use deltalake::kernel::{Action, Add, Remove};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use stroom_core::{DAY_MICROS, HOUR_MICROS};

use crate::StoreError;
use crate::input::Observation;
use crate::overlap::file_day;
use crate::store::{remove_uncommitted, sorted_writer_properties};

/// Rows per Parquet row group of a rewritten file (as the ingest's).
const ROW_GROUP_ROWS: usize = 32_768;

/// The UTC hours a delivery covers: a bit per hour of each day.
#[derive(Debug, Default, Clone)]
pub(crate) struct CoveredHours {
    days: BTreeMap<i32, u32>,
}

impl CoveredHours {
    pub(crate) fn add(&mut self, observation: &Observation) {
        let bit = (observation.hour - i64::from(observation.day) * DAY_MICROS) / HOUR_MICROS;
        *self.days.entry(observation.day).or_default() |= 1 << bit;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    /// How many hours are covered.
    pub(crate) fn hours(&self) -> u64 {
        self.days.values().map(|bits| u64::from(bits.count_ones())).sum()
    }

    fn covers_day(&self, day: i32) -> bool {
        self.days.contains_key(&day)
    }

    fn covers(&self, ts: i64) -> bool {
        let day = ts.div_euclid(DAY_MICROS);
        let bit = ts.rem_euclid(DAY_MICROS) / HOUR_MICROS;
        i32::try_from(day).ok().and_then(|day| self.days.get(&day)).is_some_and(|bits| bits & (1 << bit) != 0)
    }

    /// The covered hours as runs of consecutive hours, `[start, end)` in
    /// microseconds.
    fn runs(&self) -> Vec<(i64, i64)> {
        let mut runs: Vec<(i64, i64)> = Vec::new();
        for (&day, &bits) in &self.days {
            for bit in 0..24 {
                if bits & (1 << bit) == 0 {
                    continue;
                }
                let start = i64::from(day) * DAY_MICROS + bit * HOUR_MICROS;
                match runs.last_mut() {
                    Some(last) if last.1 == start => last.1 = start + HOUR_MICROS,
                    _ => runs.push((start, start + HOUR_MICROS)),
                }
            }
        }
        runs
    }

    /// The overwrite's predicate as SQL on `ts`, recorded with the commit.
    pub(crate) fn predicate(&self) -> String {
        let time = |micros: i64| {
            chrono::DateTime::from_timestamp_micros(micros)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default()
        };
        self.runs()
            .iter()
            .map(|&(start, end)| format!("(ts >= '{}' AND ts < '{}')", time(start), time(end)))
            .collect::<Vec<_>>()
            .join(" OR ")
    }
}

/// The stored rows of the covered hours taken out: the files rewritten
/// without them and the files they replace.
#[derive(Debug, Default)]
pub(crate) struct Replacement {
    pub(crate) adds: Vec<Add>,
    pub(crate) removes: Vec<Remove>,
    /// Stored (cell, hour) rows taken out.
    pub(crate) cell_hours: u64,
}

impl Replacement {
    pub(crate) fn actions(&self) -> impl Iterator<Item = Action> + '_ {
        self.adds.iter().cloned().map(Action::Add).chain(self.removes.iter().cloned().map(Action::Remove))
    }

    /// Removes the rewritten files (never part of the table).
    pub(crate) async fn abandon(self, table: &DeltaTable) {
        remove_uncommitted(table, &self.adds).await;
    }
}

/// The stored count of every (cell, hour) of the covered hours in `table`'s
/// loaded snapshot (rows of one key summed: a supplementary delivery adds a
/// row).
pub(crate) async fn stored_counts(
    table: &DeltaTable,
    covered: &CoveredHours,
) -> Result<HashMap<(u64, i64), u64>, StoreError> {
    let mut counts: HashMap<(u64, i64), u64> = HashMap::new();
    for (path, _) in covered_files(table, covered)? {
        crate::daily::density_rows(table, &path, &mut |o| {
            if covered.covers(o.hour) {
                *counts.entry((o.cell, o.hour)).or_default() += u64::from(o.count);
            }
        })
        .await?;
    }
    Ok(counts)
}

/// Rewrites, without the rows of the covered hours (but those of the keys
/// `held`), each density file of `table`'s loaded snapshot that holds such
/// a row.
pub(crate) async fn take_out(
    table: &DeltaTable,
    covered: &CoveredHours,
    held: &HashSet<(u64, i64)>,
) -> Result<Replacement, StoreError> {
    let files = covered_files(table, covered)?;
    let mut replacement = Replacement::default();
    let mut writer = None;
    let outcome = async {
        for (path, remove) in files {
            let mut kept = Vec::new();
            let mut taken = 0u64;
            crate::daily::density_rows(table, &path, &mut |o| {
                if covered.covers(o.hour) && !held.contains(&(o.cell, o.hour)) {
                    taken += 1;
                } else {
                    kept.push(o);
                }
            })
            .await?;
            if taken == 0 {
                continue;
            }
            replacement.cell_hours += taken;
            replacement.removes.push(remove);
            if kept.is_empty() {
                continue;
            }
            let writer = match &mut writer {
                Some(writer) => writer,
                None => writer.insert(
                    RecordBatchWriter::for_table(table)
                        .map_err(StoreError::delta("density"))?
                        .with_writer_properties(sorted_writer_properties(ROW_GROUP_ROWS)),
                ),
            };
            // The kept rows stay in the file's (cell, ts) order.
            for chunk in kept.chunks(crate::density::WRITE_BATCH_ROWS) {
                writer.write(crate::density::density_batch(chunk)?).await.map_err(StoreError::delta("density"))?;
            }
            replacement.adds.extend(writer.flush().await.map_err(StoreError::delta("density"))?);
        }
        Ok::<_, StoreError>(())
    }
    .await;
    match outcome {
        Ok(()) => Ok(replacement),
        Err(error) => {
            replacement.abandon(table).await;
            Err(error)
        }
    }
}

/// The density files of the covered days in `table`'s loaded snapshot, with
/// the action that would remove each (collected first: the snapshot's file
/// iterator is not `Send`, and the ingest's future must be).
fn covered_files(table: &DeltaTable, covered: &CoveredHours) -> Result<Vec<(String, Remove)>, StoreError> {
    let snapshot = table.snapshot().map_err(StoreError::delta("density"))?;
    Ok(snapshot
        .log_data()
        .into_iter()
        .map(|view| (view.object_store_path().to_string(), view))
        .filter(|(path, _)| file_day(path).is_some_and(|day| covered.covers_day(day)))
        .map(|(path, view)| (path, view.remove_action(true)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covered_hours_are_runs_of_whole_hours() {
        let mut covered = CoveredHours::default();
        for hour in [0, 1, 2, 23, 24, 30] {
            covered.add(&Observation::new(7, hour * HOUR_MICROS + 5, 20));
        }
        assert_eq!(covered.hours(), 6);
        assert!(covered.covers(2 * HOUR_MICROS + 59 * 60 * 1_000_000));
        assert!(!covered.covers(3 * HOUR_MICROS));
        assert!(covered.covers_day(1) && !covered.covers_day(2));
        assert_eq!(
            covered.predicate(),
            "(ts >= '1970-01-01T00:00:00Z' AND ts < '1970-01-01T03:00:00Z') OR \
             (ts >= '1970-01-01T23:00:00Z' AND ts < '1970-01-02T01:00:00Z') OR \
             (ts >= '1970-01-02T06:00:00Z' AND ts < '1970-01-02T07:00:00Z')"
        );
    }
}
