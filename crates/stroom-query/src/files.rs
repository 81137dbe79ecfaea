//! [`SnapshotFiles`]: a table over exactly the Parquet files of one Delta
//! snapshot, each with the statistics the Delta log keeps for it (rows,
//! nulls, minimum and maximum per column), for sessions that plan in this
//! process.
//!
//! A plain listing table learns a file's size with a request per file and
//! its statistics by reading every footer before it can skip a file; the
//! Delta log already holds both. So a scan here keeps only the files whose
//! log statistics can satisfy the query's filters, and opens nothing else
//! (filters on the derived `day` reach it as ranges of `ts`, see
//! `day_filter`).
//!
//! The statistics are used as bounds, never as answers: a timestamp's
//! maximum (kept to the millisecond in the log) is rounded up, and string
//! bounds (which Delta writers may truncate) are not used at all. A file the
//! log holds no statistics for is always read.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::stats::Precision;
use datafusion::common::{Column, ColumnStatistics, DFSchema, ScalarValue, Statistics, project_schema};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingTableUrl, PartitionedFile};
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::Result;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use deltalake::{DeltaTable, ObjectMeta};

use crate::QueryError;

/// The files of one Delta snapshot with their log statistics.
#[derive(Debug)]
pub(crate) struct SnapshotFiles {
    schema: SchemaRef,
    url: ObjectStoreUrl,
    files: Vec<PartitionedFile>,
}

impl SnapshotFiles {
    /// The files of `table`'s loaded snapshot, read as `schema` (the columns
    /// stored in the files); `None` when the snapshot has no file.
    pub(crate) fn from_snapshot(table: &DeltaTable, name: &str, schema: SchemaRef) -> Result<Option<Self>, QueryError> {
        let delta_error = |source| QueryError::Delta { table: name.into(), source };
        let snapshot = table.snapshot().map_err(delta_error)?;
        let actions = snapshot.add_actions_table(true).map_err(delta_error)?;
        let by_path: HashMap<String, usize> = match actions.column_by_name("path") {
            Some(paths) => (0..actions.num_rows())
                .filter(|&row| paths.is_valid(row))
                .map(|row| (paths.as_string::<i32>().value(row).to_owned(), row))
                .collect(),
            None => HashMap::new(),
        };
        let mut url = None;
        let mut files = Vec::new();
        for view in snapshot.log_data() {
            let location = view.object_store_path();
            let uri = ListingTableUrl::parse(table.log_store().to_uri(&location))?;
            url.get_or_insert_with(|| uri.object_store());
            let meta = ObjectMeta {
                location: uri.prefix().clone(),
                size: u64::try_from(view.size()).unwrap_or(0),
                last_modified: view.modification_datetime().map_err(delta_error)?,
                e_tag: None,
                version: None,
            };
            let row = by_path.get(view.path().as_ref()).or_else(|| by_path.get(location.as_ref()));
            let statistics = match row {
                Some(&row) => file_statistics(&actions, row, &schema, meta.size),
                None => Statistics::new_unknown(&schema),
            };
            files.push(PartitionedFile::new_from_meta(meta).with_statistics(Arc::new(statistics)));
        }
        Ok(url.map(|url| Self { schema, url, files }))
    }

    /// The files whose statistics can satisfy every filter.
    fn pruned(&self, state: &dyn Session, filters: &[Expr]) -> Result<Vec<PartitionedFile>> {
        let Some(predicate) = conjunction(filters.to_vec()) else { return Ok(self.files.clone()) };
        let df_schema = DFSchema::try_from(Arc::clone(&self.schema))?;
        let predicate = state.create_physical_expr(predicate, &df_schema)?;
        let Some(pruning) = PruningPredicateBuilder::new().with_file_schema(Arc::clone(&self.schema)).build(predicate)
        else {
            // Nothing to prune by (or a predicate statistics cannot answer).
            return Ok(self.files.clone());
        };
        let keep = pruning.prune(&FileBounds { files: &self.files, schema: &self.schema })?;
        Ok(self.files.iter().zip(keep).filter(|(_, keep)| *keep).map(|(file, _)| file.clone()).collect())
    }
}

#[async_trait]
impl TableProvider for SnapshotFiles {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        // Statistics only rule files out; every row is still filtered.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let files = self.pruned(state, filters)?;
        if files.is_empty() {
            return Ok(Arc::new(EmptyExec::new(project_schema(&self.schema, projection)?)));
        }
        let statistics =
            Statistics::try_merge_iter(files.iter().filter_map(|file| file.statistics.as_deref()), &self.schema)?
                .to_inexact();
        let groups = FileGroup::new(files).split_files(state.config().target_partitions());
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let source = format.file_source(TableSchema::from(Arc::clone(&self.schema)));
        let config = FileScanConfigBuilder::new(self.url.clone(), source)
            .with_file_groups(groups)
            .with_statistics(statistics)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }
}

/// The files' bounds for pruning. DataFusion's own `PrunableStatistics`
/// uses exact values only; a file's minimum and maximum here are bounds
/// (inexact, since the log rounds timestamps), which is all pruning needs.
struct FileBounds<'a> {
    files: &'a [PartitionedFile],
    schema: &'a SchemaRef,
}

impl FileBounds<'_> {
    fn column<T>(&self, column: &Column, value: impl Fn(&ColumnStatistics) -> Option<T>) -> Option<Vec<Option<T>>> {
        let index = self.schema.index_of(column.name()).ok()?;
        let values: Vec<Option<T>> = self
            .files
            .iter()
            .map(|file| file.statistics.as_ref().and_then(|s| s.column_statistics.get(index)).and_then(&value))
            .collect();
        values.iter().any(Option::is_some).then_some(values)
    }

    fn bounds(
        &self,
        column: &Column,
        bound: impl Fn(&ColumnStatistics) -> &Precision<ScalarValue>,
    ) -> Option<ArrayRef> {
        let data_type = self.schema.field_with_name(column.name()).ok()?.data_type().clone();
        let values = self.column(column, |stats| bound(stats).get_value().cloned())?;
        let null = ScalarValue::try_from(&data_type).ok()?;
        ScalarValue::iter_to_array(values.into_iter().map(|v| v.unwrap_or_else(|| null.clone()))).ok()
    }
}

impl PruningStatistics for FileBounds<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bounds(column, |stats| &stats.min_value)
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bounds(column, |stats| &stats.max_value)
    }

    fn num_containers(&self) -> usize {
        self.files.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        let counts = self.column(column, |stats| stats.null_count.get_value().map(|n| *n as u64))?;
        Some(Arc::new(UInt64Array::from(counts)))
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        let counts: Vec<Option<u64>> = self
            .files
            .iter()
            .map(|file| file.statistics.as_ref().and_then(|s| s.num_rows.get_value()).map(|n| *n as u64))
            .collect();
        Some(Arc::new(UInt64Array::from(counts)))
    }

    fn contained(&self, _: &Column, _: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}

/// A file's statistics from its row of the flattened add actions
/// (`num_records`, `null_count.C`, `min.C`, `max.C`), as bounds.
fn file_statistics(actions: &RecordBatch, row: usize, schema: &SchemaRef, size: u64) -> Statistics {
    let int = |name: &str| {
        actions
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .filter(|c| c.is_valid(row))
            .and_then(|c| usize::try_from(c.value(row)).ok())
    };
    let bound = |name: &str, data_type: &DataType| {
        let column = actions.column_by_name(name)?;
        let value = ScalarValue::try_from_array(column, row).ok()?;
        if value.is_null() {
            return None;
        }
        value.cast_to(data_type).ok()
    };
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let name = field.name();
            let mut stats = ColumnStatistics::new_unknown();
            if let Some(nulls) = int(&format!("null_count.{name}")) {
                stats.null_count = Precision::Exact(nulls);
            }
            if usable_bounds(field.data_type()) {
                let min = bound(&format!("min.{name}"), field.data_type());
                let max = bound(&format!("max.{name}"), field.data_type()).map(round_up_millis);
                if let (Some(min), Some(max)) = (min, max) {
                    stats.min_value = Precision::Inexact(min);
                    stats.max_value = Precision::Inexact(max);
                }
            }
            stats
        })
        .collect();
    Statistics {
        num_rows: int("num_records").map_or(Precision::Absent, Precision::Exact),
        total_byte_size: Precision::Inexact(usize::try_from(size).unwrap_or(usize::MAX)),
        column_statistics: columns,
    }
}

/// Whether the log's bounds of a column of this type can be trusted:
/// numbers, dates and timestamps; not strings or binary, which writers may
/// truncate.
fn usable_bounds(data_type: &DataType) -> bool {
    data_type.is_integer() || data_type.is_floating() || matches!(data_type, DataType::Date32 | DataType::Timestamp(..))
}

/// A timestamp maximum rounded up to the end of its millisecond (the log
/// keeps milliseconds), so that it stays an upper bound.
fn round_up_millis(value: ScalarValue) -> ScalarValue {
    match value {
        ScalarValue::TimestampMicrosecond(Some(us), tz) => {
            ScalarValue::TimestampMicrosecond(Some(us.saturating_add(999)), tz)
        }
        ScalarValue::TimestampNanosecond(Some(ns), tz) => {
            ScalarValue::TimestampNanosecond(Some(ns.saturating_add(999_999)), tz)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::TimeUnit;

    #[test]
    fn timestamp_maxima_are_rounded_up_to_their_millisecond() {
        let tz: Option<Arc<str>> = Some("UTC".into());
        assert_eq!(
            round_up_millis(ScalarValue::TimestampMicrosecond(Some(5_000), tz.clone())),
            ScalarValue::TimestampMicrosecond(Some(5_999), tz)
        );
        assert_eq!(round_up_millis(ScalarValue::UInt64(Some(7))), ScalarValue::UInt64(Some(7)));
        assert!(!usable_bounds(&DataType::Utf8));
        assert!(usable_bounds(&DataType::Timestamp(TimeUnit::Microsecond, None)));
    }
}
