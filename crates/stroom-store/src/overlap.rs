//! Deliveries that repeat stored cell-hours. Density counts are summed per
//! (cell, hour) within one ingest, but a (cell, hour) that a later delivery
//! brings again (a re-delivery under another name, a corrected file) would
//! be counted twice by an append. So an ingest keeps the keys it reads on
//! the days that already hold data (they come sorted, so a day's keys are a
//! sorted vector: 16 bytes a key, and nothing for days the table does not
//! have yet, as in a backfill), and before it commits it reads the stored
//! keys of those days and refuses the delivery if any is among them.

use std::collections::{BTreeMap, HashSet};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use deltalake::DeltaTable;

use crate::StoreError;
use crate::input::Observation;

/// The (cell, hour) keys a delivery brings on days the table already has.
#[derive(Debug, Default)]
pub(crate) struct DeliveredKeys {
    /// Days with stored files when the ingest started.
    stored_days: HashSet<i32>,
    keys: BTreeMap<i32, Vec<(u64, i64)>>,
    /// The day of the previous key, and whether it is a stored day.
    last: Option<(i32, bool)>,
}

/// The day of a density file from its partition folder (`day=YYYY-MM-DD/…`).
pub(crate) fn file_day(path: &str) -> Option<i32> {
    let folder = path.split('/').find_map(|part| part.strip_prefix("day="))?;
    let date = chrono::NaiveDate::parse_from_str(folder, "%Y-%m-%d").ok()?;
    Some(stroom_core::date_to_days(date))
}

fn files(table: &DeltaTable) -> Result<Vec<String>, StoreError> {
    let snapshot = table.snapshot().map_err(StoreError::delta("density"))?;
    Ok(snapshot.log_data().into_iter().map(|add| add.object_store_path().to_string()).collect())
}

impl DeliveredKeys {
    pub(crate) fn start(table: Option<&DeltaTable>) -> Result<Self, StoreError> {
        let stored_days = match table {
            Some(table) => files(table)?.iter().filter_map(|p| file_day(p)).collect(),
            None => HashSet::new(),
        };
        Ok(Self { stored_days, ..Self::default() })
    }

    /// Keeps one key of the delivery (keys come in (day, cell, hour) order).
    pub(crate) fn add(&mut self, observation: &Observation) {
        let stored = match self.last {
            Some((day, stored)) if day == observation.day => stored,
            _ => {
                let stored = self.stored_days.contains(&observation.day);
                self.last = Some((observation.day, stored));
                stored
            }
        };
        if stored {
            self.keys.entry(observation.day).or_default().push((observation.cell, observation.hour));
        }
    }

    /// Refuses the delivery if a stored density file of `table` holds one
    /// of its keys: names how many and the first found.
    pub(crate) async fn check(&mut self, table: &DeltaTable) -> Result<(), StoreError> {
        if self.keys.is_empty() {
            return Ok(());
        }
        // Sorted already as they came; sorting again costs one pass.
        for keys in self.keys.values_mut() {
            keys.sort_unstable();
        }
        let mut repeated = 0u64;
        let mut first: Option<(u64, i64)> = None;
        for file in files(table)? {
            let Some(keys) = file_day(&file).and_then(|day| self.keys.get(&day)) else { continue };
            read_keys(table, &file, &mut |key| {
                if keys.binary_search(&key).is_ok() {
                    repeated += 1;
                    first = Some(first.map_or(key, |f| f.min(key)));
                }
            })
            .await?;
        }
        match first {
            None => Ok(()),
            Some((cell, hour)) => Err(StoreError::Repeated {
                cell_hours: repeated,
                cell: stroom_core::Cell::from_u64(cell).map(|c| c.to_string()).unwrap_or_else(|_| cell.to_string()),
                hour: chrono::DateTime::from_timestamp_micros(hour).map(|t| t.to_rfc3339()).unwrap_or_default(),
            }),
        }
    }
}

/// Passes every (cell, ts) of one stored density file to `each`.
async fn read_keys(
    table: &DeltaTable,
    file: &str,
    each: &mut (dyn FnMut((u64, i64)) + Send),
) -> Result<(), StoreError> {
    let problem = |problem: String| StoreError::Parquet { path: file.into(), problem };
    for batch in crate::daily::density_file_columns(table, file, &["cell", "ts"]).await? {
        let batch = batch.map_err(|e| problem(e.to_string()))?;
        let index = |name: &str| batch.schema().index_of(name).map_err(|e| problem(e.to_string()));
        let cells = batch.column(index("cell")?).as_primitive::<Int64Type>();
        let ts = batch.column(index("ts")?).as_primitive::<TimestampMicrosecondType>();
        if cells.null_count() + ts.null_count() > 0 {
            return Err(problem("a null in a density file".into()));
        }
        for i in 0..batch.num_rows() {
            each((cells.value(i) as u64, ts.value(i)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_dated_by_its_partition_folder() {
        assert_eq!(file_day("day=1970-01-02/part-00000-x.zstd.parquet"), Some(1));
        assert_eq!(file_day("prefix/density/day=2024-05-01/part.parquet"), Some(19844));
        assert_eq!(file_day("part.parquet"), None);
        assert_eq!(file_day("day=2024-13-01/part.parquet"), None);
    }
}
