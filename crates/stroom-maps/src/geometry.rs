//! Geometry in degrees and on the page: cell boundaries as GeoJSON polygons
//! (longitude first, counter-clockwise, cut at the antimeridian), and the Web
//! Mercator projection that fits a route into the map frame.

use stroom_core::{Cell, Route};

/// A position in degrees, longitude first (the GeoJSON order).
pub(crate) type LngLat = (f64, f64);

/// A point on the page, in SVG user units (y grows downwards).
pub(crate) type Point = (f64, f64);

/// The boundary of `cell` as GeoJSON polygon exterior rings: closed (first
/// position repeated last), counter-clockwise in longitude/latitude (RFC 7946
/// right-hand rule), longitudes within -180..=180.
///
/// Almost every cell gives one ring whose vertices are exactly H3's boundary
/// vertices. A cell that crosses the antimeridian is cut in two along it, and a
/// cell around a pole is closed along the pole's latitude, as RFC 7946 asks.
pub(crate) fn cell_rings(cell: Cell) -> Vec<Vec<LngLat>> {
    let vertices: Vec<LngLat> = cell.h3o().boundary().iter().map(|p| (p.lng(), p.lat())).collect();
    let (min_lng, max_lng) = lng_extent(&vertices);
    if max_lng - min_lng < 180.0 {
        return finish(vertices).into_iter().collect();
    }
    // The ring crosses the antimeridian or winds around a pole: make the
    // longitudes continuous first.
    let mut ring = unwrap_longitudes(&vertices);
    let first = ring[0];
    let last = ring[ring.len() - 1];
    let winding = last.0 + wrap_degrees(first.0 - last.0) - first.0;
    if winding.abs() > 180.0 {
        let pole = if cell.center().0 > 0.0 { 90.0 } else { -90.0 };
        let end = first.0 + winding;
        ring.extend([(end, first.1), (end, pole), (first.0, pole)]);
    }
    let (min_lng, max_lng) = lng_extent(&ring);
    let shift = 360.0 * ((-180.0 - min_lng) / 360.0).ceil();
    let ring: Vec<LngLat> = ring.into_iter().map(|(lng, lat)| (lng + shift, lat)).collect();
    if max_lng + shift <= 180.0 {
        return finish(ring).into_iter().collect();
    }
    let west = clip_half_plane(&ring, |p| p.0 <= 180.0);
    let east: Vec<LngLat> =
        clip_half_plane(&ring, |p| p.0 >= 180.0).into_iter().map(|(lng, lat)| (lng - 360.0, lat)).collect();
    [west, east].into_iter().filter_map(finish).collect()
}

/// The ring of `cell` on a continuous longitude axis near `center_lng`, for
/// drawing. `None` for a cell around a pole, which a Web Mercator map cannot
/// show.
pub(crate) fn cell_ring_near(cell: Cell, center_lng: f64) -> Option<Vec<LngLat>> {
    let vertices: Vec<LngLat> = cell.h3o().boundary().iter().map(|p| (p.lng(), p.lat())).collect();
    let ring = unwrap_longitudes(&vertices);
    let first = ring[0];
    let last = ring[ring.len() - 1];
    if (last.0 + wrap_degrees(first.0 - last.0) - first.0).abs() > 180.0 {
        return None;
    }
    let shift = 360.0 * ((center_lng - first.0) / 360.0).round();
    Some(ring.into_iter().map(|(lng, lat)| (lng + shift, lat)).collect())
}

/// Closes an open ring, orients it counter-clockwise and drops degenerate ones.
fn finish(mut ring: Vec<LngLat>) -> Option<Vec<LngLat>> {
    ring.dedup();
    while ring.len() > 1 && ring.first() == ring.last() {
        ring.pop();
    }
    if ring.len() < 3 {
        return None;
    }
    let area = signed_area(&ring);
    if area == 0.0 {
        return None;
    }
    if area < 0.0 {
        ring.reverse();
    }
    ring.push(ring[0]);
    Some(ring)
}

/// Twice the signed area of a ring (open or closed) by the shoelace formula:
/// positive when counter-clockwise with x to the east and y to the north.
pub(crate) fn signed_area(ring: &[LngLat]) -> f64 {
    let n = ring.len();
    (0..n)
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            a.0 * b.1 - b.0 * a.1
        })
        .sum()
}

fn lng_extent(ring: &[LngLat]) -> (f64, f64) {
    ring.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)))
}

/// Maps a longitude difference into -180..180.
fn wrap_degrees(delta: f64) -> f64 {
    delta - 360.0 * (delta / 360.0).round()
}

/// Longitudes made continuous along the ring: each step is the shorter way
/// round.
fn unwrap_longitudes(vertices: &[LngLat]) -> Vec<LngLat> {
    let mut out: Vec<LngLat> = Vec::with_capacity(vertices.len() + 3);
    for &(lng, lat) in vertices {
        let lng = match out.last() {
            Some(&(previous, _)) => previous + wrap_degrees(lng - previous),
            None => lng,
        };
        out.push((lng, lat));
    }
    out
}

/// Sutherland-Hodgman clipping of an open ring by a vertical half plane whose
/// boundary is longitude 180.
fn clip_half_plane(ring: &[LngLat], inside: impl Fn(LngLat) -> bool) -> Vec<LngLat> {
    let mut out = Vec::with_capacity(ring.len() + 2);
    for i in 0..ring.len() {
        let current = ring[i];
        let previous = ring[(i + ring.len() - 1) % ring.len()];
        let crossing = |a: LngLat, b: LngLat| (180.0, a.1 + (b.1 - a.1) * (180.0 - a.0) / (b.0 - a.0));
        match (inside(previous), inside(current)) {
            (true, true) => out.push(current),
            (true, false) => out.push(crossing(previous, current)),
            (false, true) => {
                out.push(crossing(previous, current));
                out.push(current);
            }
            (false, false) => {}
        }
    }
    out
}

/// Latitude limit of Web Mercator.
const MAX_MERCATOR_LAT: f64 = 85.051_128_78;

/// Web Mercator of a position, in radians of longitude on both axes, y north.
fn mercator((lng, lat): LngLat) -> (f64, f64) {
    let phi = lat.clamp(-MAX_MERCATOR_LAT, MAX_MERCATOR_LAT).to_radians();
    (lng.to_radians(), (std::f64::consts::FRAC_PI_4 + phi / 2.0).tan().ln())
}

/// A rectangle on the page.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rect {
    pub(crate) x: f64,
    pub(crate) y: f64,
    pub(crate) width: f64,
    pub(crate) height: f64,
}

impl Rect {
    pub(crate) fn right(&self) -> f64 {
        self.x + self.width
    }

    pub(crate) fn bottom(&self) -> f64 {
        self.y + self.height
    }

    pub(crate) fn intersects(&self, other: &Rect) -> bool {
        self.x < other.right() && other.x < self.right() && self.y < other.bottom() && other.y < self.bottom()
    }

    pub(crate) fn contains(&self, other: &Rect) -> bool {
        other.x >= self.x && other.right() <= self.right() && other.y >= self.y && other.bottom() <= self.bottom()
    }
}

/// The smallest geographic extent a map shows, in degrees of latitude, so that
/// a short route still shows its surroundings.
const MIN_SPAN_DEGREES: f64 = 0.6;
/// Margin around the route, as a share of its projected extent on each side.
const MARGIN_SHARE: f64 = 0.08;

/// Web Mercator scaled and shifted so that a set of positions fills a frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Projection {
    frame: Rect,
    /// Page units per radian.
    scale: f64,
    /// Mercator x at the frame's left edge and y at its top edge.
    left: f64,
    top: f64,
}

impl Projection {
    /// Fits `positions` into `frame` with a margin, widening the shorter side
    /// so that the map fills the whole frame. `positions` must not be empty.
    pub(crate) fn fit(positions: impl IntoIterator<Item = LngLat>, frame: Rect) -> Self {
        let (mut min_x, mut max_x, mut min_y, mut max_y) =
            (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        for position in positions {
            let (x, y) = mercator(position);
            min_x = min_x.min(x);
            max_x = max_x.max(x);
            min_y = min_y.min(y);
            max_y = max_y.max(y);
        }
        if !min_x.is_finite() {
            (min_x, max_x, min_y, max_y) = (0.0, 0.0, 0.0, 0.0);
        }
        let center_lat = inverse_mercator_lat((min_y + max_y) / 2.0);
        // The minimum span, converted to Mercator units at the centre latitude.
        let min_span = MIN_SPAN_DEGREES.to_radians() / center_lat.to_radians().cos();
        let pad = |lo: f64, hi: f64| {
            let span = (hi - lo) * (1.0 + 2.0 * MARGIN_SHARE);
            let span = span.max(min_span);
            let mid = (lo + hi) / 2.0;
            (mid - span / 2.0, mid + span / 2.0)
        };
        let (mut min_x, mut max_x) = pad(min_x, max_x);
        let (mut min_y, mut max_y) = pad(min_y, max_y);
        let scale = (frame.width / (max_x - min_x)).min(frame.height / (max_y - min_y));
        // Widen the axis with room to spare so the map fills the frame.
        let extra_x = (frame.width / scale - (max_x - min_x)) / 2.0;
        let extra_y = (frame.height / scale - (max_y - min_y)) / 2.0;
        min_x -= extra_x;
        max_x += extra_x;
        min_y -= extra_y;
        max_y += extra_y;
        debug_assert!(max_x > min_x && max_y > min_y);
        Self { frame, scale, left: min_x, top: max_y }
    }

    /// The page position of a geographic position.
    pub(crate) fn project(&self, position: LngLat) -> Point {
        let (x, y) = mercator(position);
        (self.frame.x + (x - self.left) * self.scale, self.frame.y + (self.top - y) * self.scale)
    }

    /// The frame the map fills.
    pub(crate) fn frame(&self) -> Rect {
        self.frame
    }

    /// Longitude and latitude ranges that the frame shows.
    pub(crate) fn bounds(&self) -> (LngLat, LngLat) {
        let west = self.left.to_degrees();
        let east = (self.left + self.frame.width / self.scale).to_degrees();
        let north = inverse_mercator_lat(self.top);
        let south = inverse_mercator_lat(self.top - self.frame.height / self.scale);
        ((west, south), (east, north))
    }

    /// The longitude at the frame's centre.
    pub(crate) fn center_lng(&self) -> f64 {
        (self.left + self.frame.width / self.scale / 2.0).to_degrees()
    }

    /// Kilometres on the ground per page unit at the frame's central latitude.
    pub(crate) fn km_per_unit(&self) -> f64 {
        let center_lat = inverse_mercator_lat(self.top - self.frame.height / self.scale / 2.0);
        EARTH_RADIUS_KM * center_lat.to_radians().cos() / self.scale
    }
}

/// Mean Earth radius used for the scale bar.
const EARTH_RADIUS_KM: f64 = 6371.0;

fn inverse_mercator_lat(y: f64) -> f64 {
    (2.0 * y.exp().atan() - std::f64::consts::FRAC_PI_2).to_degrees()
}

/// Everything of a route that a map must show: stations, waypoints and the
/// centres of its cells (the map's margin leaves room for the rest of each
/// cell).
pub(crate) fn route_positions<'a>(
    route: &'a Route,
    cells: impl Iterator<Item = Cell> + 'a,
) -> impl Iterator<Item = LngLat> + 'a {
    let stations = route.stations.iter().map(|s| (s.lng, s.lat));
    let waypoints = route.segments.iter().flat_map(|s| s.waypoints.iter().map(|&(lat, lng)| (lng, lat)));
    let cell_centres = cells.map(|cell| {
        let (lat, lng) = cell.center();
        (lng, lat)
    });
    stations.chain(waypoints).chain(cell_centres)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(text: &str) -> Cell {
        Cell::parse(text).unwrap()
    }

    #[test]
    fn ordinary_cell_is_its_boundary_closed_and_counter_clockwise() {
        let c = cell("871ec9000ffffff");
        let rings = cell_rings(c);
        assert_eq!(rings.len(), 1);
        let ring = &rings[0];
        assert_eq!(ring.first(), ring.last());
        assert_eq!(ring.len(), 7);
        assert!(signed_area(ring) > 0.0);
        let boundary: Vec<LngLat> = c.h3o().boundary().iter().map(|p| (p.lng(), p.lat())).collect();
        for vertex in &boundary {
            assert!(ring.contains(vertex));
        }
    }

    #[test]
    fn antimeridian_cell_is_cut_in_two() {
        // A resolution-2 cell on the antimeridian in the Pacific.
        let c = Cell::from_lat_lng(0.0, 180.0, stroom_core::Resolution::new(2).unwrap()).unwrap();
        let rings = cell_rings(c);
        assert_eq!(rings.len(), 2, "{rings:?}");
        for ring in &rings {
            assert_eq!(ring.first(), ring.last());
            assert!(signed_area(ring) > 0.0);
            assert!(ring.iter().all(|p| (-180.0..=180.0).contains(&p.0)));
        }
        let (west, east) = (&rings[0], &rings[1]);
        assert!(west.iter().all(|p| p.0 > 0.0) && west.iter().any(|p| p.0 == 180.0));
        assert!(east.iter().all(|p| p.0 < 0.0) && east.iter().any(|p| p.0 == -180.0));
    }

    #[test]
    fn polar_cell_is_closed_along_the_pole() {
        let c = Cell::from_lat_lng(90.0, 0.0, stroom_core::Resolution::new(0).unwrap()).unwrap();
        let rings = cell_rings(c);
        assert!(!rings.is_empty());
        for ring in &rings {
            assert_eq!(ring.first(), ring.last());
            assert!(signed_area(ring) > 0.0);
            assert!(ring.iter().all(|p| (-180.0..=180.0).contains(&p.0)));
        }
        assert!(rings.iter().flatten().any(|p| p.1 == 90.0));
        let width: f64 = rings.iter().map(|r| lng_extent(r).1 - lng_extent(r).0).sum();
        assert!((width - 360.0).abs() < 1e-9, "{width}");
        assert_eq!(cell_ring_near(c, 0.0), None);
    }

    #[test]
    fn projection_fills_the_frame_and_keeps_north_up() {
        let frame = Rect { x: 10.0, y: 20.0, width: 800.0, height: 600.0 };
        let projection = Projection::fit([(20.0, 40.0), (22.0, 44.0)], frame);
        let (a, b) = (projection.project((20.0, 40.0)), projection.project((22.0, 44.0)));
        assert!(b.1 < a.1, "north is up");
        assert!(b.0 > a.0, "east is right");
        for p in [a, b] {
            assert!(p.0 > frame.x && p.0 < frame.right() && p.1 > frame.y && p.1 < frame.bottom());
        }
        // The taller side fills the frame's height up to the margin.
        let used = (a.1 - b.1) / frame.height;
        assert!((used - 1.0 / 1.16).abs() < 1e-9, "{used}");
        let ((west, south), (east, north)) = projection.bounds();
        assert!(west < 20.0 && east > 22.0 && south < 40.0 && north > 44.0);
        let center = projection.project((projection.center_lng(), 42.0));
        assert!((center.0 - (frame.x + frame.width / 2.0)).abs() < 1e-9);
        assert!(projection.km_per_unit() > 0.0);
    }
}
