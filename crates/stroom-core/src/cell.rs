use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use h3o::{CellIndex, LatLng};

use crate::CoreError;

/// An H3 resolution, 0 (coarsest) to 15 (finest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Resolution(h3o::Resolution);

impl Resolution {
    /// Checks that `value` is a valid resolution.
    pub fn new(value: i64) -> Result<Self, CoreError> {
        u8::try_from(value)
            .ok()
            .and_then(|v| h3o::Resolution::try_from(v).ok())
            .map(Self)
            .ok_or(CoreError::InvalidResolution(value))
    }

    /// The resolution as a number.
    pub fn get(self) -> u8 {
        u8::from(self.0)
    }

    /// The `h3o` resolution.
    pub fn h3o(self) -> h3o::Resolution {
        self.0
    }

    /// Average hexagon edge length in kilometres.
    pub fn edge_length_km(self) -> f64 {
        self.0.edge_length_km()
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

/// A valid H3 cell. Stored on disk as its `u64` index, written on the wire as
/// the lowercase hex string that every H3 binding prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cell(CellIndex);

/// Bit offset of the resolution field in an H3 index.
const RESOLUTION_OFFSET: u32 = 52;
/// Bits per resolution digit.
const DIGIT_BITS: u32 = 3;

impl Cell {
    /// Checks that `value` is a valid H3 cell index.
    pub fn from_u64(value: u64) -> Result<Self, CoreError> {
        CellIndex::try_from(value).map(Self).map_err(|_| CoreError::InvalidCellIndex { value })
    }

    /// The cell that contains the point at `resolution`.
    pub fn from_lat_lng(lat: f64, lng: f64, resolution: Resolution) -> Result<Self, CoreError> {
        // h3o accepts any finite value and wraps it; providers' data must be
        // within range, so out-of-range coordinates are errors here.
        if !(lat.is_finite() && lng.is_finite() && (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lng)) {
            return Err(CoreError::InvalidCoordinate { lat, lng });
        }
        let point = LatLng::new(lat, lng).map_err(|_| CoreError::InvalidCoordinate { lat, lng })?;
        Ok(Self(point.to_cell(resolution.h3o())))
    }

    /// Parses a hex string (`871fb4662ffffff`, optionally `0x`-prefixed) or a
    /// decimal integer.
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        let trimmed = text.trim();
        let invalid = || CoreError::InvalidCellText { text: text.to_owned() };
        let value = if let Some(hex) = trimmed.strip_prefix("0x").or_else(|| trimmed.strip_prefix("0X")) {
            u64::from_str_radix(hex, 16).map_err(|_| invalid())?
        } else if trimmed.len() == 15
            && trimmed.bytes().all(|b| b.is_ascii_hexdigit())
            && trimmed.bytes().any(|b| b.is_ascii_alphabetic())
        {
            u64::from_str_radix(trimmed, 16).map_err(|_| invalid())?
        } else if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
            trimmed.parse::<u64>().map_err(|_| invalid())?
        } else if !trimmed.is_empty() && trimmed.len() <= 16 && trimmed.bytes().all(|b| b.is_ascii_hexdigit()) {
            u64::from_str_radix(trimmed, 16).map_err(|_| invalid())?
        } else {
            return Err(invalid());
        };
        CellIndex::try_from(value).map(Self).map_err(|_| invalid())
    }

    /// The index as stored on disk.
    pub fn to_u64(self) -> u64 {
        u64::from(self.0)
    }

    /// The `h3o` cell.
    pub fn h3o(self) -> CellIndex {
        self.0
    }

    /// The cell's resolution.
    pub fn resolution(self) -> Resolution {
        Resolution(self.0.resolution())
    }

    /// The ancestor at `resolution` (the cell itself at its own resolution).
    pub fn parent(self, resolution: Resolution) -> Result<Self, CoreError> {
        self.0
            .parent(resolution.h3o())
            .map(Self)
            .ok_or(CoreError::ParentResolution { cell_resolution: self.resolution().get(), target: resolution.get() })
    }

    /// The centre of the cell as (latitude, longitude) in degrees.
    pub fn center(self) -> (f64, f64) {
        let point = LatLng::from(self.0);
        (point.lat(), point.lng())
    }

    /// The inclusive range of `u64` indexes that holds exactly the cell's
    /// descendants at `resolution`.
    ///
    /// At a fixed resolution, the descendants of a cell differ only in the
    /// digits below the cell's own resolution, and those are the low-order
    /// meaningful bits of the index. The smallest descendant has every such
    /// digit 0 (the centre child), the largest every such digit 6. A filter
    /// "inside this cell" on a column of resolution-`resolution` cells is
    /// therefore a range predicate, which Parquet statistics can prune.
    pub fn descendant_range(self, resolution: Resolution) -> Result<RangeInclusive<u64>, CoreError> {
        let own = self.resolution().get();
        let target = resolution.get();
        if target < own {
            return Err(CoreError::ChildResolution { cell_resolution: own, target });
        }
        let with_resolution = (self.to_u64() & !(0xF << RESOLUTION_OFFSET)) | (u64::from(target) << RESOLUTION_OFFSET);
        let mut min = with_resolution;
        let mut max = with_resolution;
        for digit in (own + 1)..=target {
            let shift = DIGIT_BITS * u32::from(15 - digit);
            min &= !(0b111 << shift);
            max = (max & !(0b111 << shift)) | (0b110 << shift);
        }
        Ok(min..=max)
    }

    /// Grid distance in cells, when both cells share a resolution and the
    /// distance is defined (it is not across some pentagon distortions).
    pub fn grid_distance(self, other: Self) -> Option<i32> {
        self.0.grid_distance(other.0).ok()
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.to_u64())
    }
}

impl FromStr for Cell {
    type Err = CoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(r: i64) -> Resolution {
        Resolution::new(r).unwrap()
    }

    #[test]
    fn hex_round_trip() {
        let cell = Cell::parse("871fb4662ffffff").unwrap();
        assert_eq!(cell.to_string(), "871fb4662ffffff");
        assert_eq!(cell.resolution().get(), 7);
        assert_eq!(Cell::parse(&cell.to_u64().to_string()).unwrap(), cell);
        assert_eq!(Cell::parse("0x871fb4662ffffff").unwrap(), cell);
    }

    #[test]
    fn rejects_invalid() {
        for text in ["", "zz", "871fb4662fffff7", "123", "-5", "ffffffffffffffff"] {
            assert!(Cell::parse(text).is_err(), "{text}");
        }
        assert!(Cell::from_lat_lng(91.0, 0.0, res(7)).is_err());
        assert!(Cell::from_lat_lng(0.0, f64::NAN, res(7)).is_err());
        assert!(Resolution::new(16).is_err());
        assert!(Resolution::new(-1).is_err());
    }

    #[test]
    fn descendant_range_holds_exactly_the_descendants() {
        for (lat, lng) in [(52.37, 4.89), (51.0, 1.9)] {
            for parent_res in 0..=5 {
                let parent = Cell::from_lat_lng(lat, lng, res(parent_res)).unwrap();
                let target = res(parent_res + 2);
                let range = parent.descendant_range(target).unwrap();
                let children: Vec<u64> = parent.h3o().children(target.h3o()).map(u64::from).collect();
                assert_eq!(*range.start(), *children.iter().min().unwrap());
                assert_eq!(*range.end(), *children.iter().max().unwrap());
                // No cell of the same resolution outside the parent falls in the range.
                for neighbour in parent.h3o().grid_disk::<Vec<_>>(1) {
                    if neighbour == parent.h3o() {
                        continue;
                    }
                    for child in neighbour.children(target.h3o()) {
                        assert!(!range.contains(&u64::from(child)));
                    }
                }
            }
        }
    }

    #[test]
    fn descendant_range_of_a_pentagon() {
        let pentagon = CellIndex::base_cells().find(|c| c.is_pentagon()).unwrap();
        let cell = Cell(pentagon);
        let range = cell.descendant_range(res(3)).unwrap();
        let children: Vec<u64> = pentagon.children(h3o::Resolution::Three).map(u64::from).collect();
        // A pentagon has 1 + 5 (7^n - 1) / 6 descendants n levels down.
        assert_eq!(children.len(), 1 + 5 * (343 - 1) / 6);
        assert!(children.iter().all(|c| range.contains(c)));
    }
}
