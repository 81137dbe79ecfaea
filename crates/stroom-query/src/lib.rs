//! stroom's query layer: a DataFusion session over the Delta tables of a
//! store, the H3 functions for SQL, and the route series that the models
//! read.
//!
//! Every table is registered over exactly the Parquet files of one Delta
//! snapshot (at the latest version or a chosen vintage). In this process
//! each file carries the statistics the Delta log keeps for it, so a scan
//! opens only the files that can match its filters (`files`); on a cluster
//! the same files form a plain Parquet listing table, which Ballista runs
//! without anything from deltalake. Either way the plans, and the answers,
//! are the same.
//!
//! - `session`: [`QuerySession`], the tables of one store vintage
//!   ([`Vintage`]) on an [`Engine`], and [`read_only_options`] for users'
//!   SQL.
//! - [`cluster`]: the same plans on a Ballista cluster.
//! - `files`: the table over one snapshot's files with their log statistics.
//! - `day_filter`: filters on `day` rewritten as ranges of `ts`.
//! - `h3_udf`: the eleven H3 functions ([`h3_functions`]), stateless and
//!   registered by [`register_h3_functions`] on any `FunctionRegistry`.
//! - `series`: the segment, station and cell series, pruned by cell ranges
//!   ([`cell_ranges`]).
//!
//! Every failure is a [`QueryError`].

pub mod cluster;
mod day_filter;
mod error;
mod files;
mod h3_udf;
mod series;
mod session;

pub use error::QueryError;
pub use h3_udf::{h3_functions, register_h3_functions};
pub use series::{SeriesGranularity, cell_ranges};
pub use session::{Engine, QuerySession, Vintage, read_only_options};
