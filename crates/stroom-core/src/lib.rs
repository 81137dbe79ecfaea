//! Domain types of stroom, free of I/O: H3 cells and resolutions over `h3o`,
//! UTC hour and day buckets, and migration routes (segments, stations and the
//! H3 cells that a segment covers).
//!
//! Everything here is a pure function of its inputs: callers read files and
//! clocks and pass the results in. Cells are `u64` on disk and lowercase hex
//! strings on the wire; [`Cell`] converts between the two and checks validity.

mod cell;
mod error;
mod route;
mod time;

pub use cell::{Cell, Resolution};
pub use error::CoreError;
pub use route::{
    DEFAULT_BUFFER_RINGS, DEFAULT_ROUTE_RESOLUTION, Route, RouteCells, Segment, SegmentCells, SegmentMode, Station,
    StationRole,
};
pub use time::{
    DAY_MICROS, HOUR_MICROS, date_to_days, day_of_micros, days_to_date, hour_floor_micros, parse_date,
    parse_timestamp_micros,
};
