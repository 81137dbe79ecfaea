use std::collections::HashSet;
use std::path::Path;

use deltalake::kernel::StructField;
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use serde_json::Value;
use url::Url;

use crate::{StoreError, TableName};

/// The key under which stroom records its own metadata in Delta commits.
pub(crate) const COMMIT_METADATA_KEY: &str = "stroom";

/// A store: one object_store location holding one Delta table per name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    root: Url,
}

impl Store {
    /// Opens a store at a URL (`file:///…`, `memory:///`) or a local folder,
    /// which is created if missing.
    pub fn open(location: &str) -> Result<Self, StoreError> {
        let problem = |problem: String| StoreError::Location { location: location.to_owned(), problem };
        let looks_like_url = location.contains("://");
        let mut root = if looks_like_url {
            Url::parse(location).map_err(|e| problem(e.to_string()))?
        } else {
            let path = Path::new(location);
            std::fs::create_dir_all(path).map_err(|e| problem(e.to_string()))?;
            let absolute = std::fs::canonicalize(path).map_err(|e| problem(e.to_string()))?;
            Url::from_directory_path(&absolute).map_err(|()| problem("not an absolute path".into()))?
        };
        if root.scheme() == "file" {
            let path = root.to_file_path().map_err(|()| problem("not a local path".into()))?;
            std::fs::create_dir_all(&path).map_err(|e| problem(e.to_string()))?;
        }
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        Ok(Self { root })
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
        let builder = deltalake::DeltaTableBuilder::from_url(url).map_err(StoreError::delta(table.as_str()))?;
        let builder = match version {
            Some(v) => builder.with_version(v),
            None => builder,
        };
        match builder.load().await {
            Ok(t) => Ok(Some(t)),
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(StoreError::Delta { table: table.as_str().into(), source: e }),
        }
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
        let empty = DeltaTable::try_from_url(url).await.map_err(StoreError::delta(table.as_str()))?;
        empty
            .create()
            .with_table_name(table.as_str())
            .with_columns(columns)
            .with_partition_columns(partitions.iter().map(|p| p.to_string()))
            .await
            .map_err(StoreError::delta(table.as_str()))
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
