//! [`DayComparisons`]: an optimizer rule that turns a comparison of a
//! timestamp's day with a date into the same comparison on the timestamp.
//!
//! `density.day` is `CAST(ts AS DATE)`, derived so that every engine sees
//! the same column. Filtering on it as written would cast every row (which
//! for a time-zone-aware timestamp costs more than reading it) and could not
//! use any statistics. For a UTC timestamp the two are exactly equivalent,
//! NULLs included: `CAST(ts AS DATE) < D` holds exactly when `ts < D
//! 00:00`, so the rewritten filter gives the same rows, prunes files and
//! row groups by `ts`, and costs one comparison a row.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchemaRef, ExprSchema, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator, col, lit};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;

/// Rewrites `CAST(c AS DATE) op DATE 'D'` (c a UTC microsecond timestamp;
/// op one of `<`, `<=`, `>`, `>=`, `=`) into a range of `c`, in filters and
/// in the filters pushed into scans.
#[derive(Debug, Default)]
pub(crate) struct DayComparisons;

impl OptimizerRule for DayComparisons {
    fn name(&self) -> &str {
        "stroom_day_comparisons"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        // Only filters: a projected expression would change its name, and
        // with it the plan's schema. The columns a filter may name are those
        // of the node's input, or for a scan, those of its table.
        let scanned = match &plan {
            LogicalPlan::TableScan(scan) => Some(scan.source.schema()),
            LogicalPlan::Filter(_) => None,
            _ => return Ok(Transformed::no(plan)),
        };
        let inputs: Vec<DFSchemaRef> =
            plan.inputs().iter().map(|input| std::sync::Arc::clone(input.schema())).collect();
        let type_of = |column: &Column| -> Option<DataType> {
            if let Some(schema) = &scanned {
                return schema.field_with_name(&column.name).ok().map(|f| f.data_type().clone());
            }
            inputs.iter().find_map(|schema| schema.field_from_column(column).ok().map(|f| f.data_type().clone()))
        };
        plan.map_expressions(|expr| {
            expr.transform_up(|e| Ok(ts_range(&e, &type_of).map_or(Transformed::no(e), Transformed::yes)))
        })
    }
}

/// The range of the timestamp that a comparison of its day with a date
/// means, when the timestamp is UTC (or has no zone) in microseconds.
pub(crate) fn ts_range(expr: &Expr, type_of: &dyn Fn(&Column) -> Option<DataType>) -> Option<Expr> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else { return None };
    let (column, op, day) = match (day_of(left), literal_day(right), day_of(right), literal_day(left)) {
        (Some(column), Some(day), _, _) => (column, *op, day),
        (_, _, Some(column), Some(day)) => (column, op.swap()?, day),
        _ => return None,
    };
    let DataType::Timestamp(TimeUnit::Microsecond, tz) = type_of(column)? else { return None };
    if !tz.as_deref().is_none_or(|tz| matches!(tz, "UTC" | "+00:00" | "Z")) {
        return None;
    }
    let at = |day: i64| lit(ScalarValue::TimestampMicrosecond(Some(day * DAY_MICROS), tz.clone()));
    let ts = col(column.clone());
    Some(match op {
        Operator::Lt => ts.lt(at(day)),
        Operator::LtEq => ts.lt(at(day + 1)),
        Operator::Gt => ts.gt_eq(at(day + 1)),
        Operator::GtEq => ts.gt_eq(at(day)),
        Operator::Eq => ts.clone().gt_eq(at(day)).and(ts.lt(at(day + 1))),
        _ => return None,
    })
}

/// The column `c` of `CAST(c AS DATE)`.
fn day_of(expr: &Expr) -> Option<&Column> {
    let (inner, data_type) = match expr {
        Expr::Cast(cast) => (&cast.expr, cast.field.data_type()),
        Expr::TryCast(cast) => (&cast.expr, cast.field.data_type()),
        _ => return None,
    };
    match (inner.as_ref(), data_type) {
        (Expr::Column(column), DataType::Date32) => Some(column),
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
    use datafusion::logical_expr::cast;

    fn utc(column: &Column) -> Option<DataType> {
        (column.name == "ts").then(|| DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))
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
    fn day_comparisons_become_ts_ranges() {
        assert_eq!(ts_range(&day_cmp(Operator::Lt, 10), &utc), Some(col("ts").lt(at(10))));
        assert_eq!(ts_range(&day_cmp(Operator::LtEq, 10), &utc), Some(col("ts").lt(at(11))));
        assert_eq!(ts_range(&day_cmp(Operator::Gt, 10), &utc), Some(col("ts").gt_eq(at(11))));
        assert_eq!(ts_range(&day_cmp(Operator::GtEq, 10), &utc), Some(col("ts").gt_eq(at(10))));
        assert_eq!(ts_range(&day_cmp(Operator::Eq, 10), &utc), Some(col("ts").gt_eq(at(10)).and(col("ts").lt(at(11)))));
        assert_eq!(ts_range(&day_cmp(Operator::NotEq, 10), &utc), None);
        // The literal on the left: DATE 10 > CAST(ts AS DATE) is ts < day 10.
        let swapped = Expr::BinaryExpr(BinaryExpr::new(
            Box::new(lit(ScalarValue::Date32(Some(10)))),
            Operator::Gt,
            Box::new(cast(col("ts"), DataType::Date32)),
        ));
        assert_eq!(ts_range(&swapped, &utc), Some(col("ts").lt(at(10))));
        // Days before 1970 are negative.
        assert_eq!(ts_range(&day_cmp(Operator::Lt, -3), &utc), Some(col("ts").lt(at(-3))));
    }

    #[test]
    fn only_utc_microsecond_timestamps_are_rewritten() {
        let rome = |_: &Column| Some(DataType::Timestamp(TimeUnit::Microsecond, Some("Europe/Rome".into())));
        assert_eq!(ts_range(&day_cmp(Operator::Lt, 10), &rome), None);
        let millis = |_: &Column| Some(DataType::Timestamp(TimeUnit::Millisecond, None));
        assert_eq!(ts_range(&day_cmp(Operator::Lt, 10), &millis), None);
        let cell = Expr::BinaryExpr(BinaryExpr::new(
            Box::new(cast(col("cell"), DataType::Date32)),
            Operator::Lt,
            Box::new(lit(ScalarValue::Date32(Some(10)))),
        ));
        assert_eq!(ts_range(&cell, &utc), None);
    }
}
