use std::collections::HashSet;
use std::path::Path;

use deltalake::kernel::StructField;
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use object_store::ObjectStore as _;
use serde_json::Value;
use url::Url;

use crate::location::StorageOptions;
use crate::{StoreError, TableName};

/// The key under which stroom records its own metadata in Delta commits.
pub(crate) const COMMIT_METADATA_KEY: &str = "stroom";

/// A store: one object_store location holding one Delta table per name,
/// and the storage options that reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    root: Url,
    options: StorageOptions,
}

impl Store {
    /// Opens a store at a URL (`file:///…`, `s3://bucket/prefix`,
    /// `memory:///`) or a local folder, which is created if missing: the
    /// way writers open a store.
    pub fn open(location: &str) -> Result<Self, StoreError> {
        Self::create(location, StorageOptions::new())
    }

    /// A store for writing at `location` with `options`; a local folder is
    /// created if missing. Nothing is read from an object store yet.
    pub fn create(location: &str, options: StorageOptions) -> Result<Self, StoreError> {
        let store = Self::at(location, options)?;
        if let Ok(path) = store.root.to_file_path() {
            std::fs::create_dir_all(&path).map_err(|e| store.problem(e.to_string()))?;
        }
        Ok(store)
    }

    /// An existing store, for reading: fails with "no store at LOCATION"
    /// when the folder or prefix holds no table, and with one error naming
    /// the URL when its object store cannot be reached (a wrong endpoint,
    /// wrong credentials, a missing bucket).
    pub async fn open_existing(location: &str, options: StorageOptions) -> Result<Self, StoreError> {
        let store = Self::at(location, options)?;
        if store.is_empty().await? {
            return Err(StoreError::Location {
                location: location.to_owned(),
                problem: "no store there (no stroom table under it; `stroom ingest` creates one)".into(),
            });
        }
        Ok(store)
    }

    /// Parses a location without touching it.
    fn at(location: &str, options: StorageOptions) -> Result<Self, StoreError> {
        crate::location::register_object_stores();
        let problem = |problem: String| StoreError::Location { location: location.to_owned(), problem };
        let mut root = if location.contains("://") {
            Url::parse(location).map_err(|e| problem(e.to_string()))?
        } else {
            let path = Path::new(location);
            let absolute = std::path::absolute(path).map_err(|e| problem(e.to_string()))?;
            Url::from_directory_path(&absolute).map_err(|()| problem("not an absolute path".into()))?
        };
        match root.scheme() {
            "file" | "memory" => {}
            _ if crate::location::is_s3(&root) => {
                if root.host_str().is_none_or(str::is_empty) {
                    return Err(problem("an S3 store URL names its bucket: s3://BUCKET/PREFIX".into()));
                }
            }
            other => return Err(problem(format!("unsupported scheme '{other}' (use a folder, file:// or s3://)"))),
        }
        crate::location::check_storage_options(&root, &options).map_err(problem)?;
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        Ok(Self { root, options })
    }

    fn problem(&self, problem: String) -> StoreError {
        StoreError::Location { location: self.root.to_string(), problem }
    }

    /// Whether the store holds no table at all. On an object store this is
    /// one listing request, which also tells whether the store can be
    /// reached.
    async fn is_empty(&self) -> Result<bool, StoreError> {
        if let Ok(path) = self.root.to_file_path() {
            let Ok(entries) = std::fs::read_dir(&path) else { return Ok(true) };
            return Ok(!entries.filter_map(Result::ok).any(|entry| entry.path().join("_delta_log").is_dir()));
        }
        if self.root.scheme() == "memory" {
            return Ok(false);
        }
        let objects = crate::location::s3_store(&self.root, &self.options).map_err(|e| self.problem(e.to_string()))?;
        let prefix = deltalake::Path::from_url_path(self.root.path()).map_err(|e| self.problem(e.to_string()))?;
        let listed = objects
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|e| self.problem(format!("cannot reach it: {}", reach_error(&e))))?;
        Ok(listed.common_prefixes.is_empty() && listed.objects.is_empty())
    }

    /// The storage options of the store (credentials stay with the caller).
    pub fn storage_options(&self) -> &StorageOptions {
        &self.options
    }

    /// The store's root URL.
    pub fn url(&self) -> &Url {
        &self.root
    }

    /// The URL of one table.
    pub fn table_url(&self, table: TableName) -> Url {
        self.root.join(&format!("{}/", table.as_str())).expect("a table name is a valid URL segment")
    }

    /// Opens a table at its latest version, or `None` if it does not exist.
    pub async fn table(&self, table: TableName) -> Result<Option<DeltaTable>, StoreError> {
        self.table_at(table, None).await
    }

    /// Opens a table at `version` (latest when `None`), or `None` if the
    /// table does not exist.
    pub async fn table_at(&self, table: TableName, version: Option<u64>) -> Result<Option<DeltaTable>, StoreError> {
        let url = self.table_url(table);
        if url.scheme() == "file" {
            let log = url.to_file_path().map(|p| p.join("_delta_log"));
            if !matches!(log, Ok(ref p) if p.is_dir()) {
                return Ok(None);
            }
        }
        let builder = self.table_builder(table)?;
        let builder = match version {
            Some(v) => builder.with_version(v),
            None => builder,
        };
        match builder.load().await {
            Ok(t) => Ok(Some(t)),
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(DeltaTableError::ObjectStore { source }) if !matches!(source, object_store::Error::NotFound { .. }) => {
                Err(self.problem(reach_error(&source)))
            }
            Err(e) => Err(StoreError::Delta { table: table.as_str().into(), source: e }),
        }
    }

    /// A deltalake builder for one table of the store, with its options.
    fn table_builder(&self, table: TableName) -> Result<deltalake::DeltaTableBuilder, StoreError> {
        let options = self.options.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Ok(deltalake::DeltaTableBuilder::from_url(self.table_url(table))
            .map_err(StoreError::delta(table.as_str()))?
            .with_storage_options(options))
    }

    /// Opens a table, creating it with `columns` and `partitions` if missing.
    pub(crate) async fn open_or_create(
        &self,
        table: TableName,
        columns: Vec<StructField>,
        partitions: &[&str],
    ) -> Result<DeltaTable, StoreError> {
        if let Some(existing) = self.table(table).await? {
            return Ok(existing);
        }
        let url = self.table_url(table);
        if url.scheme() == "file" {
            if let Ok(path) = url.to_file_path() {
                std::fs::create_dir_all(&path).map_err(|source| StoreError::Io { path, source })?;
            }
        }
        let empty = self.table_builder(table)?.build().map_err(StoreError::delta(table.as_str()))?;
        let created = empty
            .create()
            .with_table_name(table.as_str())
            .with_columns(columns)
            .with_partition_columns(partitions.iter().map(|p| p.to_string()))
            // Version 0 or nothing: a table another writer created meanwhile
            // is used as it is, never created again on top of it.
            .with_commit_properties(deltalake::kernel::transaction::CommitProperties::default().with_max_retries(0))
            .await;
        match created {
            Ok(created) => Ok(created),
            // Another writer created the table first: use theirs.
            Err(error) => match self.table(table).await? {
                Some(existing) => Ok(existing),
                None => Err(StoreError::Delta { table: table.as_str().into(), source: error }),
            },
        }
    }
}

impl Store {
    /// The stroom metadata of every commit of a table, newest first; empty
    /// when the table does not exist.
    pub async fn commit_history(&self, name: TableName) -> Result<Vec<Value>, StoreError> {
        match self.table(name).await? {
            Some(table) => commit_metadata(&table, name).await,
            None => Ok(Vec::new()),
        }
    }

    /// The store's privacy threshold: the largest k any density ingest used
    /// (counts below it were suppressed), or the default when nothing was
    /// ingested yet.
    pub async fn privacy_k(&self) -> Result<u32, StoreError> {
        let ks = self.commit_history(TableName::Density).await?;
        let k = ks.iter().filter_map(|m| m.get("k").and_then(Value::as_u64)).max();
        Ok(k.and_then(|k| u32::try_from(k).ok()).unwrap_or(crate::DEFAULT_K))
    }
}

/// The stroom metadata of every commit of a table, newest first.
pub(crate) async fn commit_metadata(table: &DeltaTable, name: TableName) -> Result<Vec<Value>, StoreError> {
    let infos: Vec<_> = table.history(None).try_collect().await.map_err(StoreError::delta(name.as_str()))?;
    Ok(infos.into_iter().filter_map(|info| info.info.get(COMMIT_METADATA_KEY).cloned()).collect())
}

/// The content hashes of every source file already committed to a table.
pub(crate) async fn ingested_hashes(table: &DeltaTable, name: TableName) -> Result<HashSet<String>, StoreError> {
    let mut hashes = HashSet::new();
    for metadata in commit_metadata(table, name).await? {
        if let Some(sources) = metadata.get("sources").and_then(Value::as_array) {
            for source in sources {
                if let Some(hash) = source.get("sha256").and_then(Value::as_str) {
                    hashes.insert(hash.to_owned());
                }
            }
        }
    }
    Ok(hashes)
}

/// How many times a writer that lost the race for a table version starts
/// its commit again on top of the winner's.
pub(crate) const COMMIT_ATTEMPTS: usize = 5;

/// Whether a commit failed only because another writer committed that
/// table version first (stroom commits with no automatic retry where the
/// content depends on the version read, then decides what to do).
pub(crate) fn is_lost_race(error: &DeltaTableError) -> bool {
    use deltalake::kernel::transaction::TransactionError;
    matches!(
        error,
        DeltaTableError::VersionAlreadyExists(_)
            | DeltaTableError::Transaction {
                source: TransactionError::MaxCommitAttempts(_) | TransactionError::VersionAlreadyExists(_)
            }
    )
}

/// An object store error in one line: what failed, without the retries'
/// detail.
fn reach_error(error: &object_store::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// Removes files written for a commit that will not happen (best effort:
/// uncommitted files are invisible to every Delta reader anyway).
pub(crate) async fn remove_uncommitted(table: &DeltaTable, adds: &[deltalake::kernel::Add]) {
    use datafusion::object_store::ObjectStoreExt;
    let objects = table.object_store();
    for add in adds {
        if let Err(error) = objects.delete(&deltalake::Path::from(add.path.as_str())).await {
            tracing::warn!(file = add.path, %error, "Could not remove an uncommitted file.");
        }
    }
}

/// Parquet settings of every file stroom writes sorted by its first two
/// columns: zstd, plain pages (the sorted values compress as well without a
/// dictionary, and skip its hashing), row groups of `row_group_rows` rows,
/// page statistics, and the sort order recorded in the footer.
pub(crate) fn sorted_writer_properties(
    row_group_rows: usize,
) -> datafusion::parquet::file::properties::WriterProperties {
    use datafusion::parquet::basic::{Compression, ZstdLevel};
    use datafusion::parquet::file::metadata::SortingColumn;
    use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("1 is a valid zstd level")))
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_dictionary_enabled(false)
        .set_sorting_columns(Some(vec![
            SortingColumn { column_idx: 0, descending: false, nulls_first: false },
            SortingColumn { column_idx: 1, descending: false, nulls_first: false },
        ]))
        .build()
}
