use thiserror::Error;

/// Every way a domain value can be invalid. Variants carry the offending value
/// so that callers can name it in their own, richer errors (file, row, column).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    #[error("resolution {0} is outside the H3 range 0..=15")]
    InvalidResolution(i64),
    #[error("latitude {lat} / longitude {lng} is not a finite coordinate within ±90 / ±180 degrees")]
    InvalidCoordinate { lat: f64, lng: f64 },
    #[error("{value:#x} is not a valid H3 cell index")]
    InvalidCellIndex { value: u64 },
    #[error("'{text}' is not an H3 cell (expected a hex string such as 871fb4662ffffff or a decimal integer)")]
    InvalidCellText { text: String },
    #[error("resolution {target} is finer than the cell's resolution {cell_resolution}")]
    ParentResolution { cell_resolution: u8, target: u8 },
    #[error("resolution {target} is coarser than the cell's resolution {cell_resolution}")]
    ChildResolution { cell_resolution: u8, target: u8 },
    #[error("'{text}' is not a calendar date in the form YYYY-MM-DD")]
    InvalidDate { text: String },
    #[error(
        "'{text}' is not a timestamp (expected RFC 3339 such as 2024-05-01T13:00:00Z, or 'YYYY-MM-DD HH:MM:SS' in UTC)"
    )]
    InvalidTimestamp { text: String },
    #[error("route '{route}': {problem}")]
    InvalidRoute { route: String, problem: String },
}
