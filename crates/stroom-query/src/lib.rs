//! stroom's query layer: a DataFusion session over the Delta tables of a
//! store, the H3 functions for SQL, and the route series that the models
//! read.
//!
//! Every table is registered the portable way: its Delta snapshot (at the
//! latest version or a chosen vintage) gives the list of Parquet files and
//! their schema, and a plain Parquet listing table is registered over
//! exactly those files. A Ballista cluster can run the same plans, since it
//! needs nothing from deltalake at execution time.
//!
//! - `session`: [`QuerySession`], the tables of one store vintage
//!   ([`Vintage`]) on an [`Engine`], and [`read_only_options`] for users'
//!   SQL.
//! - [`cluster`]: the same plans on a Ballista cluster.
//! - `h3_udf`: the eleven H3 functions ([`h3_functions`]), stateless and
//!   registered by [`register_h3_functions`] on any `FunctionRegistry`.
//! - `series`: the segment, station and cell series, pruned by cell ranges
//!   ([`cell_ranges`]).
//!
//! Every failure is a [`QueryError`].

pub mod cluster;
mod error;
mod h3_udf;
mod series;
mod session;

pub use error::QueryError;
pub use h3_udf::{h3_functions, register_h3_functions};
pub use series::{SeriesGranularity, cell_ranges};
pub use session::{Engine, QuerySession, Vintage, read_only_options};
