//! What a store holds: each table's version history, row count and range.

use datafusion::arrow::util::display::array_value_to_string;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use serde_json::Value;

use crate::density::stored_resolution;
use crate::store::COMMIT_METADATA_KEY;
use crate::{Store, StoreError, TableName};

/// One commit of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionSummary {
    pub version: u64,
    /// Commit time, milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    /// The Delta operation (`CREATE TABLE`, `WRITE`).
    pub operation: String,
    /// stroom's own commit metadata (sources, hashes, row counts), if any.
    pub stroom: Option<Value>,
}

/// A table's current state and history.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSummary {
    pub table: TableName,
    pub version: u64,
    pub rows: u64,
    /// Earliest and latest time (density: `ts`; arrivals: `date`).
    pub first: Option<String>,
    pub last: Option<String>,
    /// Further facts as (name, value): distinct cells, stations, totals.
    pub facts: Vec<(String, String)>,
    /// Newest first.
    pub versions: Vec<VersionSummary>,
}

impl Store {
    /// A summary of every table that exists in the store.
    pub async fn summaries(&self) -> Result<Vec<TableSummary>, StoreError> {
        let mut summaries = Vec::new();
        for name in TableName::ALL {
            let Some(table) = self.table(name).await? else { continue };
            let version = table.version().unwrap_or(0);
            let infos: Vec<_> = table.history(None).try_collect().await.map_err(StoreError::delta(name.as_str()))?;
            let versions: Vec<VersionSummary> = infos
                .into_iter()
                .enumerate()
                .map(|(i, info)| VersionSummary {
                    version: version.saturating_sub(i as u64),
                    timestamp_ms: info.timestamp,
                    operation: info.operation.clone().unwrap_or_default(),
                    stroom: info.info.get(COMMIT_METADATA_KEY).cloned(),
                })
                .collect();
            let sql = match name {
                TableName::Density => {
                    "SELECT count(*), CAST(min(ts) AS VARCHAR), CAST(max(ts) AS VARCHAR), count(DISTINCT cell), sum(CAST(count AS BIGINT)) FROM t"
                }
                TableName::DensityDaily => {
                    "SELECT count(*), CAST(min(day) AS VARCHAR), CAST(max(day) AS VARCHAR), count(DISTINCT cell), sum(devices) FROM t"
                }
                TableName::Arrivals => {
                    "SELECT count(*), CAST(min(date) AS VARCHAR), CAST(max(date) AS VARCHAR), count(DISTINCT station), sum(CAST(count AS BIGINT)) FROM t"
                }
                TableName::Forecasts | TableName::Backtests | TableName::Scenarios => {
                    "SELECT count(*), CAST(min(date) AS VARCHAR), CAST(max(date) AS VARCHAR), count(DISTINCT run_id), count(DISTINCT target) FROM t"
                }
            };
            let ctx = SessionContext::new();
            table.update_datafusion_session(&ctx.state()).map_err(StoreError::delta(name.as_str()))?;
            let provider = table.table_provider().await.map_err(StoreError::query(name.as_str()))?;
            ctx.register_table("t", provider).map_err(StoreError::query(name.as_str()))?;
            let batches = ctx
                .sql(sql)
                .await
                .map_err(StoreError::query(name.as_str()))?
                .collect()
                .await
                .map_err(StoreError::query(name.as_str()))?;
            let batch = batches.first().filter(|b| b.num_rows() == 1);
            let value = |index: usize| -> Option<String> {
                let column = batch?.column(index);
                if column.is_null(0) { None } else { array_value_to_string(column, 0).ok() }
            };
            let rows = value(0).and_then(|v| v.parse().ok()).unwrap_or(0);
            let mut facts = Vec::new();
            match name {
                TableName::Density => {
                    if let Some(resolution) = stored_resolution(&table).await? {
                        facts.push(("resolution".into(), resolution.to_string()));
                    }
                    facts.push(("cells".into(), value(3).unwrap_or_default()));
                    facts.push(("devices counted".into(), value(4).unwrap_or_default()));
                }
                TableName::DensityDaily => {
                    let covered = versions
                        .first()
                        .and_then(|v| v.stroom.as_ref())
                        .and_then(|m| m.get("density_version"))
                        .map_or_else(|| "none".to_owned(), ToString::to_string);
                    facts.push(("complete for density version".into(), covered));
                    facts.push(("cells".into(), value(3).unwrap_or_default()));
                    facts.push(("devices counted".into(), value(4).unwrap_or_default()));
                }
                TableName::Arrivals => {
                    facts.push(("stations".into(), value(3).unwrap_or_default()));
                    facts.push(("people counted".into(), value(4).unwrap_or_default()));
                }
                TableName::Forecasts | TableName::Backtests | TableName::Scenarios => {
                    facts.push(("runs".into(), value(3).unwrap_or_default()));
                    facts.push(("targets".into(), value(4).unwrap_or_default()));
                }
            }
            summaries.push(TableSummary {
                table: name,
                version,
                rows,
                first: value(1),
                last: value(2),
                facts,
                versions,
            });
        }
        Ok(summaries)
    }
}

use datafusion::arrow::array::Array;
