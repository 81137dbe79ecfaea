//! Route series: daily or hourly density per route segment and station, and
//! arrivals per station, for any date range. Spatial filters become ranges
//! of cell indexes (a parent cell's descendants are one contiguous range), so
//! that Parquet statistics of files sorted by cell skip what is elsewhere.
//!
//! A route's cells become at most six `u64` ranges ([`cell_ranges`], from
//! parent cells' descendant ranges) that prune files and row groups. The
//! aggregation per (cell, bucket) runs on integer keys, and only then are
//! its rows joined with the named cell groups (segments or stations). Daily
//! series read `density_daily` when the session registered it and aggregate
//! the hours otherwise. `cell_day_series`, the input of the models and the
//! maps, stops at the per-(cell, day) rows; its callers index them by cell.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use stroom_core::{Cell, Resolution, Route, RouteCells};

use crate::{QueryError, QuerySession};

/// The time step of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesGranularity {
    Day,
    Hour,
}

/// Most ranges a spatial predicate holds; coarser parents are used beyond.
const MAX_RANGES: usize = 6;

/// A small set of inclusive `u64` ranges that covers `cells` (all at one
/// resolution): the descendant ranges of their parents at the finest
/// resolution that needs at most [`MAX_RANGES`] ranges, with adjacent ranges
/// merged. The ranges may include other cells too; they serve pruning, and an
/// exact membership test follows.
pub fn cell_ranges(cells: &[Cell]) -> Vec<RangeInclusive<u64>> {
    let Some(first) = cells.first() else { return Vec::new() };
    let resolution = first.resolution();
    for parent_level in (0..=resolution.get()).rev() {
        let parent_resolution = Resolution::new(i64::from(parent_level)).expect("a coarser resolution is valid");
        let parents: BTreeSet<Cell> = cells.iter().filter_map(|c| c.parent(parent_resolution).ok()).collect();
        let mut ranges: Vec<RangeInclusive<u64>> =
            parents.iter().filter_map(|p| p.descendant_range(resolution).ok()).collect();
        ranges.sort_by_key(|r| *r.start());
        let mut merged: Vec<RangeInclusive<u64>> = Vec::new();
        for range in ranges {
            match merged.last_mut() {
                Some(last) if *range.start() <= last.end().saturating_add(1) => {
                    *last = *last.start()..=(*last.end()).max(*range.end());
                }
                _ => merged.push(range),
            }
        }
        if merged.len() <= MAX_RANGES || parent_level == 0 {
            return merged;
        }
    }
    Vec::new()
}

fn range_predicate(column: &str, ranges: &[RangeInclusive<u64>]) -> String {
    if ranges.is_empty() {
        return "FALSE".into();
    }
    let parts: Vec<String> =
        ranges.iter().map(|r| format!("({column} BETWEEN {} AND {})", *r.start() as i64, *r.end() as i64)).collect();
    format!("({})", parts.join(" OR "))
}

fn time_bounds(column: &str, from: NaiveDate, to: NaiveDate) -> String {
    format!(
        "{column} >= TIMESTAMP '{}T00:00:00Z' AND {column} < TIMESTAMP '{}T00:00:00Z'",
        from.format("%Y-%m-%d"),
        to.format("%Y-%m-%d")
    )
}

/// A relation of named cells, `(name, cell)` (the cell as Int64, the
/// stored type), written into the SQL as `VALUES`. The cell lists of a query
/// travel inside its plan, so the same SQL runs in this process and on a
/// Ballista cluster, whose executors have no tables of the client's but the
/// Parquet ones.
fn named_cells_sql(groups: &[(&str, &[Cell])]) -> String {
    let rows: Vec<String> = groups
        .iter()
        .flat_map(|(name, cells)| {
            let name = name.replace('\'', "''");
            cells.iter().map(move |cell| format!("('{name}', {})", cell.to_u64() as i64))
        })
        .collect();
    if rows.is_empty() {
        return "SELECT CAST(NULL AS VARCHAR) AS name, CAST(NULL AS BIGINT) AS cell WHERE FALSE".into();
    }
    format!("SELECT column1 AS name, column2 AS cell FROM (VALUES {})", rows.join(", "))
}

impl QuerySession {
    /// The SQL of a density series over named groups of cells (`groups`:
    /// name and cells).
    fn grouped_density_sql(
        &self,
        groups: &[(String, Vec<Cell>)],
        from: NaiveDate,
        to: NaiveDate,
        granularity: SeriesGranularity,
    ) -> String {
        let all: Vec<Cell> =
            groups.iter().flat_map(|(_, c)| c.iter().copied()).collect::<BTreeSet<_>>().into_iter().collect();
        let named: Vec<(&str, &[Cell])> =
            groups.iter().map(|(name, cells)| (name.as_str(), cells.as_slice())).collect();
        let named = named_cells_sql(&named);
        // Aggregate per (cell, bucket) first, on integer keys, and only then
        // join the much smaller result to the named groups.
        let per_cell = self.per_cell_sql(&all, from, to, granularity);
        format!(
            "SELECT g.name, a.time, SUM(a.devices) AS devices, SUM(a.cell_hours) AS cell_hours \
             FROM ({per_cell}) a JOIN ({named}) g ON a.cell = g.cell \
             GROUP BY g.name, a.time ORDER BY g.name, time"
        )
    }

    /// The SQL of devices and cell-hours per (cell, bucket) of the cells in
    /// the ranges that cover `cells` (a superset of them). Daily buckets read
    /// the daily rollup when it is complete for this session's density
    /// version; it holds the same sums, per (cell, day).
    fn per_cell_sql(&self, cells: &[Cell], from: NaiveDate, to: NaiveDate, granularity: SeriesGranularity) -> String {
        let ranges = range_predicate("d.cell", &cell_ranges(cells));
        match granularity {
            SeriesGranularity::Day if self.daily_version().is_some() => format!(
                "SELECT d.cell, d.day AS time, SUM(d.devices) AS devices, SUM(d.cell_hours) AS cell_hours \
                 FROM density_daily d WHERE {ranges} AND d.day >= DATE '{}' AND d.day < DATE '{}' \
                 GROUP BY d.cell, d.day",
                from.format("%Y-%m-%d"),
                to.format("%Y-%m-%d"),
            ),
            _ => {
                let bucket = match granularity {
                    SeriesGranularity::Day => "CAST(d.ts AS DATE)",
                    SeriesGranularity::Hour => "d.ts",
                };
                format!(
                    "SELECT d.cell, {bucket} AS time, SUM(CAST(d.count AS BIGINT)) AS devices, COUNT(*) AS cell_hours \
                     FROM density_files d WHERE {ranges} AND {} GROUP BY d.cell, {bucket}",
                    time_bounds("d.ts", from, to),
                )
            }
        }
    }

    /// Density per segment of a route: columns `name` (the segment id),
    /// `time` (a date, or the hour), `devices` (sum of counts) and
    /// `cell_hours` (reported cell-hours). Days on which every cell was
    /// suppressed have no row. `to` is exclusive.
    pub async fn segment_series(
        &self,
        cells: &RouteCells,
        from: NaiveDate,
        to: NaiveDate,
        granularity: SeriesGranularity,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        self.require("density")?;
        let sql = self.segment_series_sql(cells, from, to, granularity)?;
        Ok(self.context().sql(&sql).await?.collect().await?)
    }

    /// Density around each station of a route (the station's cell and its
    /// neighbours within `rings`), with the columns of [`Self::segment_series`].
    pub async fn station_density_series(
        &self,
        route: &Route,
        resolution: Resolution,
        rings: u32,
        from: NaiveDate,
        to: NaiveDate,
        granularity: SeriesGranularity,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        self.require("density")?;
        let mut groups = Vec::new();
        for station in &route.stations {
            let centre = Cell::from_lat_lng(station.lat, station.lng, resolution)?;
            let cells: Vec<Cell> = centre
                .h3o()
                .grid_disk::<Vec<_>>(rings)
                .into_iter()
                .filter_map(|c| Cell::from_u64(u64::from(c)).ok())
                .collect();
            groups.push((station.id.clone(), cells));
        }
        let sql = self.grouped_density_sql(&groups, from, to, granularity);
        Ok(self.context().sql(&sql).await?.collect().await?)
    }

    /// Official arrivals at a station: columns `date`, `count`. `to` is exclusive.
    pub async fn arrivals_series(
        &self,
        station: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        self.require("arrivals")?;
        let sql = format!(
            "SELECT date, count FROM arrivals WHERE station = '{}' AND date >= DATE '{}' AND date < DATE '{}' ORDER BY date",
            station.replace('\'', "''"),
            from.format("%Y-%m-%d"),
            to.format("%Y-%m-%d")
        );
        Ok(self.context().sql(&sql).await?.collect().await?)
    }

    /// Daily device totals per cell: columns `cell` (Int64), `time` (a
    /// date), `devices` and `cell_hours`, one row per (cell, day), in no
    /// particular order. Cell-days whose every hour was suppressed have no
    /// row. `to` is exclusive. This is what the upstream signal of the models
    /// is computed from, each cell against its own seasonal baseline.
    pub async fn cell_day_series(
        &self,
        cells: &[Cell],
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        self.require("density")?;
        let distinct: Vec<Cell> = cells.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
        let named = named_cells_sql(&[("", &distinct)]);
        let per_cell = self.per_cell_sql(&distinct, from, to, SeriesGranularity::Day);
        let sql = format!(
            "SELECT a.cell, a.time, a.devices, a.cell_hours FROM ({per_cell}) a JOIN ({named}) c ON a.cell = c.cell"
        );
        Ok(self.context().sql(&sql).await?.collect().await?)
    }

    /// The SQL that [`Self::segment_series`] runs, for `EXPLAIN` and for analysts.
    pub fn segment_series_sql(
        &self,
        cells: &RouteCells,
        from: NaiveDate,
        to: NaiveDate,
        granularity: SeriesGranularity,
    ) -> Result<String, QueryError> {
        let groups: Vec<(String, Vec<Cell>)> =
            cells.segments.iter().map(|s| (s.segment_id.clone(), s.cells.clone())).collect();
        Ok(self.grouped_density_sql(&groups, from, to, granularity))
    }

    fn require(&self, table: &str) -> Result<(), QueryError> {
        if self.has_table(table) { Ok(()) } else { Err(QueryError::MissingTable(table.into())) }
    }
}
