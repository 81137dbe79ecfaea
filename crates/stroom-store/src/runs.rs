//! Model runs: the `forecasts`, `backtests` and `scenarios` tables. Each run is appended
//! as one commit whose metadata records the run id, the data vintage (the
//! versions of the tables it read), the model parameters and, for
//! backtests, the metrics derived from the rows.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{DataType as DeltaType, StructField};
use deltalake::protocol::SaveMode;
use serde_json::Value;

use crate::store::COMMIT_METADATA_KEY;
use crate::{Store, StoreError, TableName};

/// The value columns of a forecast row, in table order.
pub const RUN_VALUE_COLUMNS: [&str; 8] = ["mean", "q10", "q50", "q90", "lo80", "hi80", "lo95", "hi95"];

fn run_fields(with_actual: bool) -> Vec<Field> {
    let mut fields = vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("created_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("target", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("chosen", DataType::Utf8, true),
        Field::new("cutoff", DataType::Date32, false),
        Field::new("date", DataType::Date32, false),
        Field::new("horizon", DataType::Int32, false),
    ];
    if with_actual {
        fields.push(Field::new("actual", DataType::Float64, true));
    }
    fields.extend(RUN_VALUE_COLUMNS.iter().map(|q| Field::new(*q, DataType::Float64, false)));
    fields
}

/// `forecasts(run_id, created_at, target, model, chosen, cutoff, date,
/// horizon, mean, q10, q50, q90, lo80, hi80, lo95, hi95)`: one row per run,
/// target and forecast day. `chosen` is the model `auto` picked.
pub fn forecasts_schema() -> SchemaRef {
    Arc::new(Schema::new(run_fields(false)))
}

/// `backtests(…)`: the columns of `forecasts` plus `actual`, one row per
/// backtest run, model, fold and forecast day.
pub fn backtests_schema() -> SchemaRef {
    Arc::new(Schema::new(run_fields(true)))
}

/// `scenarios(…)`: the columns of `forecasts` plus `variant` (`baseline` or
/// `scenario`), one row per scenario run, target, variant and forecast day.
pub fn scenarios_schema() -> SchemaRef {
    let mut fields = run_fields(false);
    fields.push(Field::new("variant", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

fn delta_columns(schema: &Schema) -> Vec<StructField> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let kind = match f.data_type() {
                DataType::Utf8 => DeltaType::STRING,
                DataType::Timestamp(_, _) => DeltaType::TIMESTAMP,
                DataType::Date32 => DeltaType::DATE,
                DataType::Int32 => DeltaType::INTEGER,
                _ => DeltaType::DOUBLE,
            };
            StructField::new(f.name().clone(), kind, f.is_nullable())
        })
        .collect()
}

impl Store {
    /// Appends one run (`batch`, with the table's schema) to `forecasts`,
    /// `backtests` or `scenarios` as one commit carrying `metadata`. Returns the new version.
    pub async fn append_run(&self, table: TableName, batch: RecordBatch, metadata: Value) -> Result<u64, StoreError> {
        let schema = match table {
            TableName::Forecasts => forecasts_schema(),
            TableName::Backtests => backtests_schema(),
            TableName::Scenarios => scenarios_schema(),
            other => {
                return Err(StoreError::Option(format!(
                    "runs go to forecasts, backtests or scenarios, not {}",
                    other.as_str()
                )));
            }
        };
        if batch.schema().fields() != schema.fields() {
            return Err(StoreError::Option(format!(
                "a {} run must have the columns {:?}",
                table.as_str(),
                schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>()
            )));
        }
        let delta = self.open_or_create(table, delta_columns(&schema), &[]).await?;
        let written = delta
            .write(vec![batch])
            .with_save_mode(SaveMode::Append)
            .with_commit_properties(
                CommitProperties::default().with_metadata([(COMMIT_METADATA_KEY.to_owned(), metadata)]),
            )
            .await
            .map_err(StoreError::delta(table.as_str()))?;
        Ok(written.version().unwrap_or(0))
    }
}
