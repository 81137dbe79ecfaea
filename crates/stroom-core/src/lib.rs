//! Domain types of stroom, free of I/O: H3 cells and resolutions over `h3o`,
//! UTC hour and day buckets, and migration routes (segments, stations and the
//! H3 cells that a segment covers).
//!
//! Everything here is a pure function of its inputs: callers read files and
//! clocks and pass the results in. Cells are `u64` on disk and lowercase hex
//! strings on the wire; [`Cell`] converts between the two and checks validity.
//!
//! - `cell`: [`Cell`] wraps an `h3o::CellIndex`; [`Resolution`] checks
//!   0..=15. [`Cell::descendant_range`] gives the contiguous `u64` range of
//!   a cell's descendants at a finer resolution, on which `stroom-query`'s
//!   spatial pruning rests.
//! - `time`: UTC hour and day buckets, and strict parsing of dates
//!   ([`parse_date`]) and timestamps ([`parse_timestamp_micros`]):
//!   impossible dates are errors, never rounded.
//! - `route`: [`Route::from_geojson`] parses and validates a route from the
//!   text of its GeoJSON; [`Route::cells`] derives each segment's cells.
//!
//! Every failure is a [`CoreError`].

mod cell;
mod error;
#[cfg(test)]
mod fuzz;
mod route;
mod time;

pub use cell::{Cell, Resolution};
pub use error::CoreError;
pub use route::{
    DEFAULT_BUFFER_RINGS, DEFAULT_ROUTE_RESOLUTION, Route, RouteCells, Segment, SegmentCells, SegmentMode, Station,
    StationRole,
};
pub use time::{
    DAY_MICROS, HOUR_MICROS, date_to_days, day_of_micros, days_to_date, hour_floor_micros, parse_date, parse_duration,
    parse_timestamp_micros,
};
