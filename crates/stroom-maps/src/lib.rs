//! Forecast maps and briefings: what stroom shows to people who read a
//! forecast rather than compute one.
//!
//! Three outputs, all built from the same [`MapSpec`] (a route, a forecast date
//! and one value per H3 cell):
//!
//! - [`geojson`]: an RFC 7946 FeatureCollection for GIS tools (cell polygons with
//!   a `hex_id` property that kepler.gl recognises, the route line, the stations);
//! - [`svg`] and [`png()`]: a static map over an embedded Natural Earth basemap,
//!   hexagons coloured on a colour-blind-safe sequential scale with a legend, and
//!   the forecast date, data vintage, model and uncertainty written on it;
//! - [`briefing_html`]: a self-contained, printable HTML page with the map, a fan
//!   chart, a table of the next 14 days and the model's backtest accuracy.
//!
//! The crate does no I/O and reads no clock: data comes in, bytes or strings go
//! out. The basemap and the fonts are compiled in, so rendering gives the same
//! picture on every machine. Coordinates are written longitude first wherever a
//! format says so (GeoJSON); a suppressed cell never carries a value in any
//! output, whatever the caller put into its [`CellValue`].
//!
//! Inputs are [`MapSpec`] (a route, a forecast date, vintage, model, an
//! uncertainty sentence and one [`CellValue`] per cell) and, for the page,
//! [`Briefing`] (a map, a station's observed series, [`ForecastPoint`]s and
//! an optional [`Accuracy`]). The modules behind the outputs: `geometry`
//! (cell polygons and the map projection), `colour` (the class breaks),
//! `map` (the SVG), `raster` (the PNG), `chart` (the briefing's fan chart),
//! `briefing` (the page), `basemap` (the embedded outlines) and `text`
//! (escaping and number formats). Every failure is a [`MapError`].

mod basemap;
mod briefing;
mod chart;
mod colour;
mod error;
mod geojson;
mod geometry;
mod map;
mod raster;
mod scenario;
mod text;

#[cfg(test)]
mod testing;

use chrono::NaiveDate;
use stroom_core::{Cell, Route};

pub use briefing::{
    Accuracy, Briefing, CapacityAlert, CapacityAlerts, Driver, Drivers, ForecastPoint, Nowcast, TABLE_DAYS, UNUSUAL_Z,
    UnusualSegment, briefing_html,
};
pub use error::MapError;
pub use geojson::geojson;
pub use map::svg;
pub use scenario::{ScenarioPage, ScenarioTarget, scenario_html};

pub use raster::{MAX_PNG_WIDTH, MIN_PNG_WIDTH, png};

/// The forecast and observed value of one H3 cell of a route on the forecast
/// date.
#[derive(Debug, Clone, PartialEq)]
pub struct CellValue {
    /// The cell.
    pub cell: Cell,
    /// The id of the route segment the cell belongs to.
    pub segment: String,
    /// The point forecast (mean).
    pub mean: Option<f64>,
    /// The 10% quantile of the forecast.
    pub q10: Option<f64>,
    /// The 90% quantile of the forecast.
    pub q90: Option<f64>,
    /// The observed value, once known.
    pub observed: Option<f64>,
    /// On the nowcast layer: the robust z-score of `observed` against its
    /// same-weekday baseline (`mean`).
    pub z: Option<f64>,
    /// The cell's count is below the privacy threshold. A suppressed cell is
    /// drawn and listed as suppressed; its numbers are never written out, even
    /// when they are set here.
    pub suppressed: bool,
}

impl CellValue {
    /// Whether the cell has a forecast to show: not suppressed and a finite mean.
    fn shown_mean(&self) -> Option<f64> {
        if self.suppressed { None } else { self.mean.filter(|v| v.is_finite()) }
    }

    /// The number the cell is coloured by on `layer`: the mean, or the z-score.
    fn shown(&self, layer: Layer) -> Option<f64> {
        match layer {
            Layer::Forecast => self.shown_mean(),
            Layer::Nowcast if self.suppressed => None,
            Layer::Nowcast => self.z.filter(|v| v.is_finite()),
        }
    }
}

/// What a map's cells show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layer {
    /// The expected density on the forecast day (viridis, darker is more).
    #[default]
    Forecast,
    /// How unusual the day's density is: each cell's robust z-score against
    /// its same-weekday baseline, on a diverging scale with fixed breaks at
    /// ±1, ±2 and ±3 (blue below usual, red above).
    Nowcast,
}

/// Everything a map shows: the route, what the numbers are, and where they
/// came from.
#[derive(Debug, Clone)]
pub struct MapSpec<'a> {
    /// The route drawn on the map.
    pub route: &'a Route,
    /// The headline, e.g. "Western Balkans: forecast arrivals".
    pub title: String,
    /// The date the cell values forecast.
    pub forecast_date: NaiveDate,
    /// The data vintage the forecast was made from, e.g. the Delta table
    /// versions or the last day of data.
    pub vintage: String,
    /// The model that made the forecast.
    pub model: String,
    /// One sentence on how uncertain the forecast is, e.g. "8 in 10 days fall
    /// inside the 80% interval in backtests".
    pub uncertainty: String,
    /// What a cell's value counts, for the legend, e.g. "devices per cell and
    /// day".
    pub value_label: String,
    /// One value per cell; cells in more than one segment may appear once per
    /// segment.
    pub cells: Vec<CellValue>,
    /// Ids of the route's stations with an open capacity alert: ringed in red
    /// on the map and flagged in the GeoJSON.
    pub alert_stations: Vec<String>,
    /// What the cells show.
    pub layer: Layer,
}
