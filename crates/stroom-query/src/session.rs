//! The session over a store: every table registered from one Delta snapshot
//! (the latest version, a version, or the version current at a time).
//!
//! [`QuerySession::open`] registers `density_files` (the Parquet files of
//! `density`) and the view `density` over it, which adds `day` (a Delta
//! partition value that is not in the files, derived from `ts`);
//! `arrivals`; `density_daily` only when a rollup commit is complete for
//! exactly the density version read ([`QuerySession::daily_version`]), so
//! that daily series read it instead of aggregating hours; and the model
//! runs `forecasts` and `backtests`, whose versions are kept apart from the
//! data vintage ([`QuerySession::run_versions`]). [`QuerySession::open_on`]
//! does the same with plans that run on a Ballista cluster.
//! [`read_only_options`] refuses DDL, DML and statements in users' SQL.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::datasource::empty::EmptyTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use deltalake::DeltaTable;
use stroom_store::{
    Store, StroomObjectStores, TableName, arrivals_schema, backtests_schema, density_daily_schema, density_schema,
    forecasts_schema, scenarios_schema,
};

use crate::day_filter::DayComparisons;
use crate::files::SnapshotFiles;
use crate::{QueryError, register_h3_functions};

/// Which version of the tables to read: a data vintage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vintage {
    /// The given version of every table (tables created later are absent).
    Version(u64),
    /// The version of every table that was current at this time.
    AsOf(DateTime<Utc>),
}

/// Where a session's plans run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Engine {
    /// In this process.
    #[default]
    Local,
    /// On a Ballista cluster: the scheduler's URL, `df://HOST:PORT`.
    Cluster(String),
}

/// A DataFusion session over a store's tables, with the H3 functions.
pub struct QuerySession {
    ctx: SessionContext,
    versions: BTreeMap<&'static str, u64>,
    run_versions: BTreeMap<&'static str, u64>,
    /// The version of the daily rollup registered as `density_daily`: one
    /// complete for exactly the density version read, if there is one.
    daily_version: Option<u64>,
}

impl std::fmt::Debug for QuerySession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuerySession").field("versions", &self.versions).finish_non_exhaustive()
    }
}

/// Options that refuse every statement which writes or changes anything
/// (DDL, DML, `COPY`, `SET`): analysts' queries are read-only.
pub fn read_only_options() -> SQLOptions {
    SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}

impl QuerySession {
    /// Opens a session over every table of the store, at the latest version
    /// or at `vintage`: `density` (and its files, `density_files`),
    /// `arrivals`, and the model runs `forecasts` and `backtests`.
    pub async fn open(store: &Store, vintage: Option<Vintage>) -> Result<Self, QueryError> {
        Self::open_on(store, vintage, &Engine::Local).await
    }

    /// Opens a session like [`QuerySession::open`] whose plans run on
    /// `engine`: the same tables (Parquet files of the same snapshots) and
    /// functions, so a cluster gives the local answers.
    pub async fn open_on(store: &Store, vintage: Option<Vintage>, engine: &Engine) -> Result<Self, QueryError> {
        // Files are split into contiguous groups, one per partition; a time
        // filter then leaves whole groups empty. More partitions than cores
        // keep every core busy after pruning.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let config = SessionConfig::new()
            .with_target_partitions((4 * cores).max(8))
            .with_information_schema(true)
            .set_bool("datafusion.execution.parquet.pruning", true)
            .set_bool("datafusion.execution.parquet.enable_page_index", false)
            .set_bool("datafusion.execution.parquet.pushdown_filters", false);
        let objects = StroomObjectStores::new(store.storage_options().clone());
        let runtime = RuntimeEnvBuilder::new().with_object_store_registry(Arc::new(objects)).build_arc()?;
        let mut state =
            SessionStateBuilder::new().with_config(config).with_runtime_env(runtime).with_default_features().build();
        register_h3_functions(&mut state)?;
        let ctx = match engine {
            Engine::Local => SessionContext::new_with_state(state),
            Engine::Cluster(url) => crate::cluster::remote_context(url, state).await?,
        };
        ctx.add_optimizer_rule(Arc::new(DayComparisons));
        let mut versions = BTreeMap::new();
        let mut run_versions = BTreeMap::new();
        let mut daily_version = None;
        for name in
            [TableName::Density, TableName::Arrivals, TableName::Forecasts, TableName::Backtests, TableName::Scenarios]
        {
            let Some(mut table) = store.table(name).await? else { continue };
            match vintage {
                Some(Vintage::Version(v)) => {
                    if table.version().is_some_and(|latest| v > latest) {
                        continue;
                    }
                    if table.load_version(v).await.is_err() {
                        continue;
                    }
                }
                Some(Vintage::AsOf(time)) => {
                    if table.load_with_datetime(time).await.is_err() {
                        continue;
                    }
                    // A time before the table's first commit loads version 0;
                    // the table did not exist yet.
                    let committed =
                        table.version().and_then(|v| table.snapshot().ok().and_then(|s| s.version_timestamp(v)));
                    if committed.is_some_and(|ms| ms > time.timestamp_millis()) {
                        continue;
                    }
                }
                None => {}
            }
            let version = table.version().unwrap_or(0);
            let (file_schema, files_name) = match name {
                TableName::Density => (without_partitions(&density_schema(), &["day"]), "density_files"),
                TableName::Forecasts => (forecasts_schema(), "forecasts"),
                TableName::Backtests => (backtests_schema(), "backtests"),
                TableName::Scenarios => (scenarios_schema(), "scenarios"),
                _ => (arrivals_schema(), "arrivals"),
            };
            ctx.register_table(files_name, snapshot_files(&table, name.as_str(), file_schema, engine)?)?;
            if name == TableName::Density {
                // The partition column `day` lives in the Delta log, not in
                // the files; it is derived from `ts` so that every engine
                // (and a Ballista executor) sees the same column.
                ctx.sql("CREATE VIEW density AS SELECT cell, ts, count, CAST(ts AS DATE) AS day FROM density_files")
                    .await?;
                daily_version = register_daily(&ctx, store, version, engine).await?;
            }
            if matches!(name, TableName::Forecasts | TableName::Backtests | TableName::Scenarios) {
                run_versions.insert(name.as_str(), version);
            } else {
                versions.insert(name.as_str(), version);
            }
        }
        Ok(Self { ctx, versions, run_versions, daily_version })
    }

    /// The DataFusion context, for callers that build their own plans.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The version of each registered data table (`density`, `arrivals`):
    /// the data vintage of every answer this session gives.
    pub fn versions(&self) -> &BTreeMap<&'static str, u64> {
        &self.versions
    }

    /// Plans a read-only SQL query; statements that write or change state are refused.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame, QueryError> {
        match self.ctx.sql_with_options(sql, read_only_options()).await {
            Ok(frame) => Ok(frame),
            Err(error) => {
                let text = error.to_string();
                if text.contains("not supported")
                    && (text.contains("DDL") || text.contains("DML") || text.contains("Statement"))
                {
                    Err(QueryError::ReadOnly(text))
                } else {
                    Err(error.into())
                }
            }
        }
    }

    /// The version of each registered run table (`forecasts`, `backtests`).
    pub fn run_versions(&self) -> &BTreeMap<&'static str, u64> {
        &self.run_versions
    }

    /// The version of the daily rollup that daily density series read
    /// (`density_daily`, complete for the density version of this session);
    /// `None` when they aggregate the hourly table.
    pub fn daily_version(&self) -> Option<u64> {
        self.daily_version
    }

    /// Whether a table is registered.
    pub fn has_table(&self, name: &str) -> bool {
        self.versions.contains_key(name) || self.run_versions.contains_key(name)
    }
}

/// Registers `density_daily`, the daily rollup complete for exactly
/// `density_version`, when there is one; returns its version.
async fn register_daily(
    ctx: &SessionContext,
    store: &Store,
    density_version: u64,
    engine: &Engine,
) -> Result<Option<u64>, QueryError> {
    let Some(table) = stroom_store::daily_table_for(store, density_version).await? else { return Ok(None) };
    let name = TableName::DensityDaily.as_str();
    ctx.register_table(name, snapshot_files(&table, name, density_daily_schema(), engine)?)?;
    Ok(table.version())
}

/// A table over exactly the files of `table`'s loaded snapshot. In this
/// process, with each file's statistics from the Delta log
/// ([`SnapshotFiles`]); on a cluster, a Parquet listing table, which Ballista
/// ships to its scheduler and executors.
fn snapshot_files(
    table: &DeltaTable,
    name: &str,
    file_schema: SchemaRef,
    engine: &Engine,
) -> Result<Arc<dyn TableProvider>, QueryError> {
    match engine {
        Engine::Local => Ok(match SnapshotFiles::from_snapshot(table, name, Arc::clone(&file_schema))? {
            Some(files) => Arc::new(files),
            None => Arc::new(EmptyTable::new(file_schema)),
        }),
        Engine::Cluster(_) => {
            let delta_error = |source| QueryError::Delta { table: name.into(), source };
            let uris: Vec<String> = table.get_file_uris().map_err(delta_error)?.collect();
            parquet_files(uris, file_schema)
        }
    }
}

fn without_partitions(schema: &SchemaRef, partitions: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        schema.fields().iter().filter(|f| !partitions.contains(&f.name().as_str())).cloned().collect::<Vec<_>>(),
    ))
}

/// A Parquet listing table over exactly `uris` (or an empty table).
fn parquet_files(uris: Vec<String>, schema: SchemaRef) -> Result<Arc<dyn TableProvider>, QueryError> {
    if uris.is_empty() {
        return Ok(Arc::new(EmptyTable::new(schema)));
    }
    let urls = uris.iter().map(ListingTableUrl::parse).collect::<Result<Vec<_>, _>>()?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}
