//! [`SnapshotFiles`]: a table over exactly the Parquet files of one Delta
//! snapshot, each with the statistics the Delta log keeps for it (rows,
//! nulls, minimum and maximum per column), for sessions that plan in this
//! process.
//!
//! A plain listing table learns a file's size with a request per file and
//! its statistics by reading every footer before it can skip a file; the
//! Delta log already holds both. So a scan here keeps only the files whose
//! log statistics can satisfy the query's filters, and opens nothing else.
//! A filter on the derived `day` column (`CAST(ts AS DATE)`, which no
//! statistics answer) also yields the range of `ts` it implies, so that day
//! filters skip files too.
//!
//! The statistics are used as bounds, never as answers: a timestamp's
//! maximum (kept to the millisecond in the log) is rounded up, and string
//! bounds (which Delta writers may truncate) are not used at all. A file the
//! log holds no statistics for is always read.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::pruning::PrunableStatistics;
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, DFSchema, ScalarValue, Statistics, project_schema};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingTableUrl, PartitionedFile};
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::Result;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown, col, lit};
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

/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;

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
        let mut all = filters.to_vec();
        all.extend(filters.iter().filter_map(|filter| implied_ts_range(filter, &self.schema)));
        let Some(predicate) = conjunction(all) else { return Ok(self.files.clone()) };
        let df_schema = DFSchema::try_from(Arc::clone(&self.schema))?;
        let predicate = state.create_physical_expr(predicate, &df_schema)?;
        let Some(pruning) = PruningPredicateBuilder::new().with_file_schema(Arc::clone(&self.schema)).build(predicate)
        else {
            // Nothing to prune by (or a predicate statistics cannot answer).
            return Ok(self.files.clone());
        };
        let statistics = self
            .files
            .iter()
            .map(|file| file.statistics.clone().unwrap_or_else(|| Arc::new(Statistics::new_unknown(&self.schema))))
            .collect();
        let keep = pruning.prune(&PrunableStatistics::new(statistics, Arc::clone(&self.schema)))?;
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

/// The range of `ts` that a comparison of `CAST(ts AS DATE)` with a date
/// implies (`ts` a UTC microsecond timestamp), as an extra filter: days are
/// UTC days, so `CAST(ts AS DATE) < D` holds exactly when `ts < D 00:00`.
fn implied_ts_range(filter: &Expr, schema: &SchemaRef) -> Option<Expr> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else { return None };
    let (column, op, day) = match (day_of(left), literal_day(right), day_of(right), literal_day(left)) {
        (Some(column), Some(day), _, _) => (column, *op, day),
        (_, _, Some(column), Some(day)) => (column, op.swap()?, day),
        _ => return None,
    };
    let field = schema.field_with_name(&column).ok()?;
    let DataType::Timestamp(TimeUnit::Microsecond, tz) = field.data_type() else { return None };
    if !tz.as_deref().is_none_or(|tz| matches!(tz, "UTC" | "+00:00" | "Z")) {
        return None;
    }
    let at = |day: i64| lit(ScalarValue::TimestampMicrosecond(Some(day * DAY_MICROS), tz.clone()));
    let ts = col(datafusion::common::Column::new_unqualified(column));
    Some(match op {
        Operator::Lt => ts.lt(at(day)),
        Operator::LtEq => ts.lt(at(day + 1)),
        Operator::Gt => ts.gt_eq(at(day + 1)),
        Operator::GtEq => ts.gt_eq(at(day)),
        Operator::Eq => ts.clone().gt_eq(at(day)).and(ts.lt(at(day + 1))),
        _ => return None,
    })
}

/// The column `C` of `CAST(C AS DATE)`.
fn day_of(expr: &Expr) -> Option<String> {
    let (inner, data_type) = match expr {
        Expr::Cast(cast) => (&cast.expr, cast.field.data_type()),
        Expr::TryCast(cast) => (&cast.expr, cast.field.data_type()),
        _ => return None,
    };
    match (inner.as_ref(), data_type) {
        (Expr::Column(column), DataType::Date32) => Some(column.name.clone()),
        _ => None,
    }
}

/// Days since 1970-01-01 of a date literal.
fn literal_day(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(ScalarValue::Date32(Some(day)), _) => Some(i64::from(*day)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::cast;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("cell", DataType::UInt64, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        ]))
    }

    fn day_cmp(op: Operator, day: i32) -> Expr {
        Expr::BinaryExpr(BinaryExpr::new(
            Box::new(cast(col("ts"), DataType::Date32)),
            op,
            Box::new(lit(ScalarValue::Date32(Some(day)))),
        ))
    }

    fn at(day: i64) -> Expr {
        lit(ScalarValue::TimestampMicrosecond(Some(day * DAY_MICROS), Some("UTC".into())))
    }

    #[test]
    fn day_comparisons_imply_ts_ranges() {
        let s = schema();
        assert_eq!(implied_ts_range(&day_cmp(Operator::Lt, 10), &s), Some(col("ts").lt(at(10))));
        assert_eq!(implied_ts_range(&day_cmp(Operator::LtEq, 10), &s), Some(col("ts").lt(at(11))));
        assert_eq!(implied_ts_range(&day_cmp(Operator::Gt, 10), &s), Some(col("ts").gt_eq(at(11))));
        assert_eq!(implied_ts_range(&day_cmp(Operator::GtEq, 10), &s), Some(col("ts").gt_eq(at(10))));
        assert_eq!(
            implied_ts_range(&day_cmp(Operator::Eq, 10), &s),
            Some(col("ts").gt_eq(at(10)).and(col("ts").lt(at(11))))
        );
        assert_eq!(implied_ts_range(&day_cmp(Operator::NotEq, 10), &s), None);
        // The literal on the left: DATE 10 > CAST(ts AS DATE) is ts < day 10.
        let swapped = Expr::BinaryExpr(BinaryExpr::new(
            Box::new(lit(ScalarValue::Date32(Some(10)))),
            Operator::Gt,
            Box::new(cast(col("ts"), DataType::Date32)),
        ));
        assert_eq!(implied_ts_range(&swapped, &s), Some(col("ts").lt(at(10))));
        // Days before 1970 are negative.
        assert_eq!(implied_ts_range(&day_cmp(Operator::Lt, -3), &s), Some(col("ts").lt(at(-3))));
    }

    #[test]
    fn only_utc_timestamps_imply_ranges() {
        let local = Arc::new(Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("Europe/Rome".into())),
            false,
        )]));
        assert_eq!(implied_ts_range(&day_cmp(Operator::Lt, 10), &local), None);
        let cell = Expr::BinaryExpr(BinaryExpr::new(
            Box::new(cast(col("cell"), DataType::Date32)),
            Operator::Lt,
            Box::new(lit(ScalarValue::Date32(Some(10)))),
        ));
        assert_eq!(implied_ts_range(&cell, &schema()), None);
    }

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
