//! stroom's storage layer: one Delta Lake table per name under a store URL,
//! their schemas, and validated ingest that commits once or not at all.
//!
//! A store is an `object_store` location (a local folder by default) holding
//! `<store>/density`, `<store>/arrivals`, `<store>/forecasts` and
//! `<store>/backtests`, and the derived daily rollup `<store>/density_daily`.
//! Every ingest checks its input as it reads it and lands as one Delta commit
//! on its table (a density ingest then commits the rollup of what it added);
//! an ingest that fails commits nothing and removes what it wrote. Each
//! commit's metadata records the content hash of each source file, so that
//! a file ingested twice is recognised and not counted twice.
//!
//! [`Store`] is the store's URL and the storage options that reach it:
//! [`Store::create`] is for writers, [`Store::open_existing`] for readers
//! (a location with no table is an error). [`Store::commit_history`] gives
//! each commit's stroom metadata and [`Store::privacy_k`] the store's k,
//! the largest any density ingest used.
//!
//! - `location`: `s3://` stores, and [`StroomObjectStores`], the object
//!   store registry of every DataFusion session, local or in a cluster
//!   process.
//! - `schema`: the table names ([`TableName`]) and their schemas.
//! - `input`: provider files read row by row, every value checked and every
//!   error located ([`Location`]).
//! - `density`: the density ingest ([`DensityIngest`]).
//! - `daily`: the derived rollup `density_daily` ([`catch_up_daily`],
//!   [`daily_table_for`]).
//! - `arrivals`: the arrivals ingest ([`ArrivalsIngest`]), plain or mapped
//!   CSV layouts merged by (station, date) in one overwrite commit.
//! - `runs`: the model runs, the `forecasts` and `backtests` tables.
//! - `summary`: each table's versions, row counts and ranges
//!   ([`TableSummary`]).
//!
//! Every failure is a [`StoreError`]. The crate knows nothing of HTTP or of
//! models.

mod arrivals;
mod daily;
mod density;
mod error;
#[cfg(test)]
mod fuzz;
mod input;
mod location;
mod overlap;
mod replace;
mod runs;
mod schema;
mod store;
mod summary;
mod vacuum;

pub use arrivals::{ArrivalsIngest, ArrivalsReport, EmptyCounts};
pub use daily::{catch_up_daily, daily_table_for, density_daily_schema};
pub use density::{DEFAULT_SPILL_ENTRIES, DensityIngest, DensityReport, OnStored, SourceFile};
pub use error::{Location, StoreError};
pub use input::quoted;
pub use location::{StorageOptions, StroomObjectStores, check_storage_options, is_s3, s3_store};
pub use runs::{RUN_VALUE_COLUMNS, backtests_schema, forecasts_schema, scenarios_schema};
pub use schema::{DEFAULT_K, MIN_K, TableName, arrivals_schema, density_schema};
pub use store::Store;
pub use summary::{TableSummary, VersionSummary};
pub use vacuum::VacuumReport;

/// Progress of a long ingest, reported as input bytes processed.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);
