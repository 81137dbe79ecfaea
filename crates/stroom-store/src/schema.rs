//! Table names and schemas.
//!
//! Delta Lake has no unsigned integer types, so the `cell` column (an H3
//! index, whose top bit is always zero) is a Delta `long` and `count` a Delta
//! `integer` on disk. The values are identical to their unsigned forms;
//! stroom's readers present them as UInt64 and UInt32.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::kernel::{DataType as DeltaType, StructField};

/// The k-anonymity threshold applied at ingest unless configured higher.
pub const DEFAULT_K: u32 = 15;
/// The lowest threshold that may be configured: it may be raised, never lowered.
pub const MIN_K: u32 = 15;

/// The tables of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableName {
    Density,
    Arrivals,
    Forecasts,
    Backtests,
    /// Closure scenarios: baseline and scenario rows, never in `forecasts`.
    Scenarios,
    /// The daily rollup of `density`, derived by stroom (never ingested into).
    DensityDaily,
}

impl TableName {
    /// Every table, in display order.
    pub const ALL: [Self; 6] =
        [Self::Density, Self::DensityDaily, Self::Arrivals, Self::Forecasts, Self::Backtests, Self::Scenarios];

    /// The table's folder name under the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Density => "density",
            Self::Arrivals => "arrivals",
            Self::Forecasts => "forecasts",
            Self::Backtests => "backtests",
            Self::Scenarios => "scenarios",
            Self::DensityDaily => "density_daily",
        }
    }
}

/// `density(cell, ts, count, day)`: device counts per H3 cell and UTC hour,
/// partitioned by `day`, files sorted by cell then time.
pub fn density_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("cell", DataType::Int64, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("count", DataType::Int32, false),
        Field::new("day", DataType::Date32, false),
    ]))
}

pub(crate) fn density_columns() -> Vec<StructField> {
    vec![
        StructField::new("cell", DeltaType::LONG, false),
        StructField::new("ts", DeltaType::TIMESTAMP, false),
        StructField::new("count", DeltaType::INTEGER, false),
        StructField::new("day", DeltaType::DATE, false),
    ]
}

/// `arrivals(station, date, count)`: official daily counts per station.
pub fn arrivals_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("station", DataType::Utf8, false),
        Field::new("date", DataType::Date32, false),
        Field::new("count", DataType::Int32, false),
    ]))
}

pub(crate) fn arrivals_columns() -> Vec<StructField> {
    vec![
        StructField::new("station", DeltaType::STRING, false),
        StructField::new("date", DeltaType::DATE, false),
        StructField::new("count", DeltaType::INTEGER, false),
    ]
}
