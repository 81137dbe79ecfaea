use chrono::NaiveDate;

/// Why a map or briefing could not be made. A variant names its cause in its
/// message or returns it as its `source()`, never both, so that a chain
/// printed whole (anyhow's `{:#}`) names each cause once.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// The requested PNG width is outside the supported range.
    #[error("a PNG map must be {min} to {max} pixels wide, not {width_px}")]
    InvalidWidth { width_px: u32, min: u32, max: u32 },

    /// The renderer rejected the SVG that this crate produced (a defect here,
    /// not in the caller's data).
    #[error("the map's SVG could not be parsed for rendering")]
    Svg(#[from] resvg::usvg::Error),

    /// The rendered map could not be encoded as PNG.
    #[error("the rendered map could not be encoded as PNG: {message}")]
    PngEncoding { message: String },

    /// A briefing needs at least one forecast day.
    #[error("the briefing for '{station}' has no forecast days")]
    EmptyForecast { station: String },

    /// A series value is NaN or infinite.
    #[error("the {series} value '{field}' on {date} is not a finite number")]
    NonFiniteValue { series: &'static str, field: &'static str, date: NaiveDate },

    /// The dates of a series do not strictly increase.
    #[error("the {series} dates must strictly increase, but {date} follows {previous}")]
    UnorderedDates { series: &'static str, previous: NaiveDate, date: NaiveDate },

    /// An accuracy figure is NaN, infinite or out of range.
    #[error("the accuracy figure '{field}' is {value}, which is not a valid {expected}")]
    InvalidAccuracy { field: &'static str, value: f64, expected: &'static str },
}
