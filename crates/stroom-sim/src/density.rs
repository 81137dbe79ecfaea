//! Hourly device counts per cell: background population plus the phones of
//! migrants in transit or waiting, with overdispersed noise and the
//! provider's k-threshold applied.
//!
//! One day becomes one provider Parquet file. For every cell and hour, the
//! background mean (population, daily and weekly cycle, scale) is drawn with
//! negative-binomial noise, and the phones of migrants are added: groups in
//! transit are placed along their segment's path by progress, in three
//! sub-groups, and people waiting are spread around their station's cell.
//! Counts below k are withheld and counted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, RecordBatch, TimestampMicrosecondArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use h3o::LatLng;
use stroom_core::{Cell, HOUR_MICROS, Resolution, Route};

use crate::SimError;
use crate::flow::Flows;
use crate::population::{PopulationParams, base_devices, cycle};
use crate::rng::Rng;

/// The cells for which the provider reports counts, with their mean
/// background devices, and lookups from route positions to cells.
#[derive(Debug)]
pub(crate) struct Grid {
    pub(crate) cells: Vec<u64>,
    base: Vec<f64>,
    /// [route][segment]: cell index at evenly spaced fractions of the segment's length.
    positions: Vec<Vec<Vec<u32>>>,
    /// [route][station]: the station's cell and its neighbours in the grid.
    stations: Vec<Vec<Vec<u32>>>,
}

const POSITION_SAMPLES: usize = 512;

/// Which cells the provider reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Background {
    /// The cells of the route corridors (segment paths with their buffer).
    Corridor,
    /// Every cell in the bounding box of each route (large: use low resolutions).
    Bbox,
}

impl Grid {
    pub(crate) fn new(
        routes: &[Route],
        resolution: Resolution,
        buffer_rings: u32,
        background: Background,
        population: &PopulationParams,
    ) -> Result<Self, SimError> {
        let mut cells: Vec<u64> = Vec::new();
        for route in routes {
            let route_cells = route.cells(resolution, buffer_rings)?;
            cells.extend(route_cells.segments.iter().flat_map(|s| s.cells.iter().map(|c| c.to_u64())));
            if background == Background::Bbox {
                cells.extend(bbox_cells(route, resolution)?);
            }
            for station in &route.stations {
                let cell = Cell::from_lat_lng(station.lat, station.lng, resolution)?;
                cells.extend(cell.h3o().grid_disk::<Vec<_>>(1).into_iter().map(u64::from));
            }
        }
        cells.sort_unstable();
        cells.dedup();
        let index: HashMap<u64, u32> = cells.iter().enumerate().map(|(i, &c)| (c, i as u32)).collect();
        let base = cells
            .iter()
            .map(|&c| {
                let cell = h3o::CellIndex::try_from(c).expect("grid cells are valid");
                let centre = LatLng::from(cell);
                base_devices(population, centre.lat(), centre.lng(), cell.area_km2())
            })
            .collect();
        let positions = routes
            .iter()
            .map(|route| {
                route.segments.iter().map(|segment| segment_positions(&segment.waypoints, resolution, &index)).collect()
            })
            .collect();
        let stations = routes
            .iter()
            .map(|route| {
                route
                    .stations
                    .iter()
                    .map(|s| {
                        let cell = LatLng::new(s.lat, s.lng).expect("valid station").to_cell(resolution.h3o());
                        cell.grid_disk::<Vec<_>>(1)
                            .into_iter()
                            .filter_map(|c| index.get(&u64::from(c)).copied())
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Ok(Self { cells, base, positions, stations })
    }

    /// Cells of one segment of one route (the path, for tests and callers).
    pub(crate) fn segment_path(&self, route: usize, segment: usize) -> Vec<u64> {
        let mut cells: Vec<u64> = self.positions[route][segment].iter().map(|&i| self.cells[i as usize]).collect();
        cells.dedup();
        cells
    }
}

fn bbox_cells(route: &Route, resolution: Resolution) -> Result<Vec<u64>, SimError> {
    let points = route.segments.iter().flat_map(|s| s.waypoints.iter());
    let (mut south, mut north, mut west, mut east) = (90.0f64, -90.0f64, 180.0f64, -180.0f64);
    for &(lat, lng) in points {
        south = south.min(lat);
        north = north.max(lat);
        west = west.min(lng);
        east = east.max(lng);
    }
    // Walk a lattice finer than the cells and collect the cells it lands in.
    let step_deg = resolution.edge_length_km() / 3.0 / 111.0;
    let mut cells = Vec::new();
    let mut lat = south;
    while lat <= north {
        let step_lng = step_deg / lat.to_radians().cos().max(0.1);
        let mut lng = west;
        while lng <= east {
            cells.push(Cell::from_lat_lng(lat, lng, resolution)?.to_u64());
            lng += step_lng;
        }
        lat += step_deg;
    }
    cells.sort_unstable();
    cells.dedup();
    Ok(cells)
}

fn segment_positions(waypoints: &[(f64, f64)], resolution: Resolution, index: &HashMap<u64, u32>) -> Vec<u32> {
    let points: Vec<LatLng> =
        waypoints.iter().map(|&(lat, lng)| LatLng::new(lat, lng).expect("validated waypoints")).collect();
    let lengths: Vec<f64> = points.windows(2).map(|w| w[0].distance_km(w[1])).collect();
    let total: f64 = lengths.iter().sum();
    let mut result = Vec::with_capacity(POSITION_SAMPLES);
    for i in 0..POSITION_SAMPLES {
        let mut along = total * (i as f64 + 0.5) / POSITION_SAMPLES as f64;
        let mut leg = 0;
        while leg + 1 < lengths.len() && along > lengths[leg] {
            along -= lengths[leg];
            leg += 1;
        }
        let fraction = if lengths[leg] > 0.0 { (along / lengths[leg]).clamp(0.0, 1.0) } else { 0.0 };
        let (a, b) = (points[leg], points[leg + 1]);
        // Linear interpolation is accurate enough between nearby waypoints.
        let point = LatLng::new(a.lat() + (b.lat() - a.lat()) * fraction, a.lng() + (b.lng() - a.lng()) * fraction)
            .expect("between valid points");
        let cell = u64::from(point.to_cell(resolution.h3o()));
        if let Some(&i) = index.get(&cell) {
            result.push(i);
        } else if let Some(&last) = result.last() {
            result.push(last);
        }
    }
    if result.is_empty() {
        result.push(0);
    }
    result
}

/// How the provider identifies places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderForm {
    /// `ts, cell, count` with the H3 cell as an integer.
    Cell,
    /// `ts, lat, lon, count` with the centre of the provider's area.
    LatLon,
}

/// The provider file schema.
pub(crate) fn provider_schema(form: ProviderForm) -> SchemaRef {
    let ts = Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false);
    let count = Field::new("count", DataType::UInt32, false);
    Arc::new(Schema::new(match form {
        ProviderForm::Cell => vec![ts, Field::new("cell", DataType::UInt64, false), count],
        ProviderForm::LatLon => {
            vec![ts, Field::new("lat", DataType::Float64, false), Field::new("lon", DataType::Float64, false), count]
        }
    }))
}

/// What one simulated day produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DayOutput {
    pub(crate) rows: u64,
    /// Cell-hours below k that the provider withheld.
    pub(crate) suppressed: u64,
    /// Migrant phones counted into the grid.
    pub(crate) migrant_phones: u64,
}

/// Everything the density of one day depends on.
pub(crate) struct DayContext<'a> {
    pub(crate) grid: &'a Grid,
    pub(crate) flows: &'a Flows,
    pub(crate) population: &'a PopulationParams,
    pub(crate) scale: f64,
    pub(crate) k: u32,
    pub(crate) seed: u64,
    /// Microseconds of day 0, 00:00 UTC.
    pub(crate) start_micros: i64,
    /// Weekday of day 0 (0 = Monday).
    pub(crate) start_weekday: u32,
    pub(crate) form: ProviderForm,
}

/// Simulates one day and writes it as one provider Parquet file.
pub(crate) fn write_day(context: &DayContext<'_>, day: usize, path: &Path) -> Result<DayOutput, SimError> {
    let grid = context.grid;
    let mut rng = Rng::stream(context.seed, 4, day as u64);
    let weekday = (context.start_weekday + day as u32) % 7;
    let mut output = DayOutput::default();
    let mut ts = Vec::new();
    let mut cells = Vec::new();
    let mut counts = Vec::new();
    let mut migrants = vec![0u32; grid.cells.len()];
    let mut touched: Vec<u32> = Vec::new();
    for hour in 0..24u32 {
        // Migrant phones this hour: groups in transit along their segment,
        // in three sub-groups, and people waiting around stations.
        for &id in &context.flows.active[day] {
            let cohort = context.flows.cohorts[id as usize];
            let duration = f64::from((cohort.exits - cohort.entered).max(1) as u32);
            let progress =
                ((day as i64 - i64::from(cohort.entered)) as f64 + (f64::from(hour) + 0.5) / 24.0) / duration;
            let positions = &grid.positions[cohort.route][cohort.segment];
            let parts = [cohort.phones / 3, cohort.phones / 3, cohort.phones - 2 * (cohort.phones / 3)];
            for (part, offset) in parts.iter().zip([-0.03, 0.0, 0.03]) {
                if *part == 0 {
                    continue;
                }
                let at = ((progress + offset).clamp(0.0, 0.999) * positions.len() as f64) as usize;
                let cell = positions[at] as usize;
                if migrants[cell] == 0 {
                    touched.push(cell as u32);
                }
                migrants[cell] += part;
            }
        }
        for (r, stations) in grid.stations.iter().enumerate() {
            for (s, station_cells) in stations.iter().enumerate() {
                let phones = context.flows.waiting[r][s][day].1;
                if phones == 0 || station_cells.is_empty() {
                    continue;
                }
                // Half around the station's own cell, the rest spread over its neighbours.
                let centre = station_cells.len() / 2;
                let share = phones / 2;
                let others = (station_cells.len() - 1).max(1) as u32;
                for (i, &cell) in station_cells.iter().enumerate() {
                    let add = if station_cells.len() == 1 {
                        phones
                    } else if i == centre {
                        phones - share + share % others
                    } else {
                        share / others
                    };
                    if add > 0 {
                        if migrants[cell as usize] == 0 {
                            touched.push(cell);
                        }
                        migrants[cell as usize] += add;
                    }
                }
            }
        }
        let level = cycle(hour, weekday) * context.scale;
        let stamp = context.start_micros + (day as i64 * 24 + i64::from(hour)) * HOUR_MICROS;
        for (i, &cell) in grid.cells.iter().enumerate() {
            let mean = grid.base[i] * level;
            let count = rng.negative_binomial(mean, context.population.noise_shape) + u64::from(migrants[i]);
            output.migrant_phones += u64::from(migrants[i]);
            if count >= u64::from(context.k) {
                ts.push(stamp);
                cells.push(cell);
                counts.push(count.min(u64::from(u32::MAX)) as u32);
            } else {
                output.suppressed += 1;
            }
        }
        for &cell in &touched {
            migrants[cell as usize] = 0;
        }
        touched.clear();
    }
    output.rows = ts.len() as u64;
    let ts = Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")) as ArrayRef;
    let counts = Arc::new(UInt32Array::from(counts)) as ArrayRef;
    let columns = match context.form {
        ProviderForm::Cell => vec![ts, Arc::new(UInt64Array::from(cells)) as ArrayRef, counts],
        ProviderForm::LatLon => {
            let centres: Vec<LatLng> = cells
                .iter()
                .map(|&c| LatLng::from(h3o::CellIndex::try_from(c).expect("grid cells are valid")))
                .collect();
            let lat = Float64Array::from_iter_values(centres.iter().map(|p| p.lat()));
            let lon = Float64Array::from_iter_values(centres.iter().map(|p| p.lng()));
            vec![ts, Arc::new(lat) as ArrayRef, Arc::new(lon) as ArrayRef, counts]
        }
    };
    let batch = RecordBatch::try_new(provider_schema(context.form), columns)?;
    write_parquet(path, &batch).map_err(|problem| SimError::Write { path: path.to_owned(), problem })?;
    Ok(output)
}

/// Writes one batch as a zstd Parquet file.
pub(crate) fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<(), String> {
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(|e| e.to_string())?))
        .build();
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(properties)).map_err(|e| e.to_string())?;
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok(())
}

/// The density file of a day.
pub(crate) fn day_path(dir: &Path, date: chrono::NaiveDate) -> PathBuf {
    dir.join("density").join(format!("density-{}.parquet", date.format("%Y-%m-%d")))
}
