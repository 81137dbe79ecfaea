//! Density series read for people rather than models: a cell's devices per
//! day or hour (the sum over its descendants at the store's resolution).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use serde_json::Value;
use stroom_core::{Cell, Resolution};
use stroom_query::{Engine, QuerySession};
use stroom_store::{Store, TableName};

use crate::error::{PipelineError, Result};

/// A cell's density series: columns `time` (date, or timestamp when
/// hourly), `devices` and `cell_hours`, and the table versions read.
#[derive(Debug, Clone)]
pub struct CellDensity {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub versions: BTreeMap<String, u64>,
}

/// `cell`'s devices per day (or hour) from `from` to `to` (exclusive); a
/// cell coarser than the store's resolution sums its descendants. A cell
/// finer than the store's resolution is a [`PipelineError::Route`].
pub async fn cell_series(
    store: &Store,
    engine: &Engine,
    cell: Cell,
    from: NaiveDate,
    to: NaiveDate,
    hourly: bool,
) -> Result<CellDensity> {
    let history = store.commit_history(TableName::Density).await?;
    let Some(storage) = history.iter().find_map(|m| m.get("resolution").and_then(Value::as_i64)) else {
        return Err(PipelineError::Missing("the store holds no density data".into()));
    };
    let storage = Resolution::new(storage)?;
    if cell.resolution().get() > storage.get() {
        return Err(PipelineError::Route(format!(
            "cell={cell} has resolution {}, finer than the store's {}",
            cell.resolution().get(),
            storage.get()
        )));
    }
    let range = cell.descendant_range(storage)?;
    let session = QuerySession::open_on(store, None, engine).await?;
    let bucket = if hourly { "ts" } else { "CAST(ts AS DATE)" };
    let sql = format!(
        "SELECT {bucket} AS time, SUM(CAST(count AS BIGINT)) AS devices, COUNT(*) AS cell_hours \
         FROM density_files WHERE cell BETWEEN {} AND {} \
         AND ts >= TIMESTAMP '{from} 00:00:00' AND ts < TIMESTAMP '{to} 00:00:00' \
         GROUP BY {bucket} ORDER BY time",
        *range.start() as i64,
        *range.end() as i64
    );
    let frame = session.context().sql(&sql).await?;
    let schema: SchemaRef = std::sync::Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await?;
    let versions = session.versions().iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    Ok(CellDensity { schema, batches, versions })
}
