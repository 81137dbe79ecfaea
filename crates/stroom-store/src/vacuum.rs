//! Files that no commit ever took: what a writer killed before its commit
//! (or a commit that lost a race) leaves in a table's folder. They are never
//! visible (a reader lists only the files of a snapshot), but they take
//! space. [`Store::vacuum`] removes them: every file under a table outside
//! `_delta_log/` that neither the latest snapshot nor any commit in the log
//! adds, and that is older than a guard, so that the files of an ingest
//! still running (written, not yet committed) are never taken.
//!
//! This is not Delta's `VACUUM`: files that an earlier version holds stay,
//! however old, so that every data vintage stays readable by time travel.

use std::collections::HashSet;
use std::time::Duration;

use datafusion::object_store::ObjectStoreExt;
use futures::TryStreamExt;
use serde_json::Value;

use crate::{Store, StoreError, TableName};

/// What a vacuum found and did, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VacuumReport {
    /// Per table: files no commit took, and their bytes.
    pub tables: Vec<(TableName, u64, u64)>,
    /// Files no commit took but younger than the guard, left in place.
    pub too_young: u64,
    /// Whether the files were removed (`false`: a dry run).
    pub removed: bool,
}

impl Store {
    /// Removes (or, with `dry_run`, lists) the files of every table that no
    /// commit took and that are older than `older_than`.
    pub async fn vacuum(&self, older_than: Duration, dry_run: bool) -> Result<VacuumReport, StoreError> {
        let mut report = VacuumReport { removed: !dry_run, ..VacuumReport::default() };
        let cutoff = chrono::Utc::now() - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
        for name in TableName::ALL {
            let Some(table) = self.table(name).await? else { continue };
            let failed = |e: String| StoreError::Location { location: self.table_url(name).to_string(), problem: e };
            let objects = table.object_store();
            let mut taken: HashSet<String> = HashSet::new();
            let snapshot = table.snapshot().map_err(StoreError::delta(name.as_str()))?;
            for view in snapshot.log_data() {
                taken.insert(view.object_store_path().to_string());
            }
            // Every add in every commit still in the log: earlier versions'
            // files stay readable by time travel.
            let log: Vec<_> = objects
                .list(Some(&deltalake::Path::from("_delta_log")))
                .try_collect()
                .await
                .map_err(|e| failed(e.to_string()))?;
            for meta in log.iter().filter(|m| m.location.as_ref().ends_with(".json")) {
                let bytes = objects.get(&meta.location).await.map_err(|e| failed(e.to_string()))?;
                let bytes = bytes.bytes().await.map_err(|e| failed(e.to_string()))?;
                for line in String::from_utf8_lossy(&bytes).lines() {
                    let Ok(action) = serde_json::from_str::<Value>(line) else { continue };
                    if let Some(path) = action.get("add").and_then(|a| a.get("path")).and_then(Value::as_str) {
                        if let Ok(decoded) = deltalake::Path::from_url_path(path) {
                            taken.insert(decoded.to_string());
                        }
                        taken.insert(path.to_owned());
                    }
                }
            }
            let listed: Vec<_> = objects.list(None).try_collect().await.map_err(|e| failed(e.to_string()))?;
            let (mut files, mut bytes) = (0u64, 0u64);
            for meta in listed {
                let path = meta.location.to_string();
                if path.starts_with("_delta_log/") || taken.contains(&path) {
                    continue;
                }
                if meta.last_modified > cutoff {
                    report.too_young += 1;
                    continue;
                }
                files += 1;
                bytes += meta.size;
                if !dry_run {
                    objects.delete(&meta.location).await.map_err(|e| failed(format!("removing {path}: {e}")))?;
                }
            }
            tracing::info!(table = name.as_str(), files, bytes, dry_run, "Files no commit took.");
            report.tables.push((name, files, bytes));
        }
        Ok(report)
    }
}
