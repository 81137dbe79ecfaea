//! Migration routes as data: stations joined by segments that converge on one
//! destination, parsed from GeoJSON, and the H3 cells each segment covers.
//!
//! A route is valid when it has exactly one destination station, every
//! station and segment id is unique, every station has at most one outgoing
//! segment and reaches the destination (the segments form an in-tree that
//! converges on it), and each segment starts and ends within 1 km of the
//! stations it names.
//!
//! A segment's cells follow the great circle between consecutive waypoints,
//! sampled at a third of the cell edge length; consecutive samples that are
//! not neighbours are joined with an H3 grid path, so the chain is
//! connected, and the chain is widened by `buffer_rings` rings of
//! neighbours.

use std::collections::{BTreeSet, HashMap};

use h3o::LatLng;
use serde_json::{Map, Value};

use crate::{Cell, CoreError, Resolution};

/// Resolution at which segment cells are derived unless configured.
pub const DEFAULT_ROUTE_RESOLUTION: u8 = 7;
/// Rings of neighbouring cells added around a segment's path unless configured.
pub const DEFAULT_BUFFER_RINGS: u32 = 2;

/// What a station is for on its route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StationRole {
    Origin,
    Border,
    Staging,
    Transit,
    Destination,
}

impl StationRole {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "origin" => Self::Origin,
            "border" => Self::Border,
            "staging" => Self::Staging,
            "transit" => Self::Transit,
            "destination" => Self::Destination,
            _ => return None,
        })
    }

    /// The role as written in route files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Origin => "origin",
            Self::Border => "border",
            Self::Staging => "staging",
            Self::Transit => "transit",
            Self::Destination => "destination",
        }
    }
}

/// How a segment is travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentMode {
    Land,
    Sea,
}

impl SegmentMode {
    /// The mode as written in route files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Land => "land",
            Self::Sea => "sea",
        }
    }
}

/// A named place on a route where people are counted or gather.
#[derive(Debug, Clone, PartialEq)]
pub struct Station {
    pub id: String,
    pub name: String,
    pub country: String,
    pub role: StationRole,
    pub lat: f64,
    pub lng: f64,
}

/// A leg of a route between two stations, drawn through real waypoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub id: String,
    pub name: String,
    pub from: String,
    pub to: String,
    pub mode: SegmentMode,
    /// Waypoints as (latitude, longitude), from the `from` station to the `to` station.
    pub waypoints: Vec<(f64, f64)>,
}

/// A named corridor: stations and segments that converge on one destination.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub id: String,
    pub name: String,
    pub description: String,
    /// Stations in file order (upstream first).
    pub stations: Vec<Station>,
    /// Segments in file order (upstream first).
    pub segments: Vec<Segment>,
}

/// The cells of one segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentCells {
    pub segment_id: String,
    /// Sorted, distinct cells.
    pub cells: Vec<Cell>,
}

/// The cells of every segment of a route, at one resolution and buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteCells {
    pub resolution: Resolution,
    pub buffer_rings: u32,
    pub segments: Vec<SegmentCells>,
}

impl RouteCells {
    /// Distinct cells over all segments.
    pub fn distinct_cells(&self) -> usize {
        self.segments.iter().flat_map(|s| s.cells.iter()).collect::<BTreeSet<_>>().len()
    }
}

/// Maximum distance between a segment's end point and its station.
const ENDPOINT_TOLERANCE_KM: f64 = 1.0;

impl Route {
    /// Parses a route from the text of its GeoJSON file. `id` is the file name
    /// without its extension.
    pub fn from_geojson(id: &str, text: &str) -> Result<Self, CoreError> {
        let invalid = |problem: String| CoreError::InvalidRoute { route: id.to_owned(), problem };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(invalid(format!("the route id '{id}' must be lowercase ascii letters, digits and '-'")));
        }
        let root: Value = serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let root = root.as_object().ok_or_else(|| invalid("the file is not a JSON object".into()))?;
        if root.get("type").and_then(Value::as_str) != Some("FeatureCollection") {
            return Err(invalid("the file is not a GeoJSON FeatureCollection".into()));
        }
        let name = string_member(root, "name").map_err(|p| invalid(p))?;
        let description = root.get("description").and_then(Value::as_str).unwrap_or_default().to_owned();
        let features = root
            .get("features")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("'features' is missing or not an array".into()))?;

        let mut stations = Vec::new();
        let mut segments = Vec::new();
        for (index, feature) in features.iter().enumerate() {
            let at = |problem: String| invalid(format!("feature {index}: {problem}"));
            let properties = feature
                .get("properties")
                .and_then(Value::as_object)
                .ok_or_else(|| at("'properties' is missing".into()))?;
            let geometry =
                feature.get("geometry").and_then(Value::as_object).ok_or_else(|| at("'geometry' is missing".into()))?;
            let kind = string_member(properties, "kind").map_err(at)?;
            let feature_id = string_member(properties, "id").map_err(at)?;
            let feature_name = string_member(properties, "name").map_err(at)?;
            match kind.as_str() {
                "station" => {
                    let role_text = string_member(properties, "role").map_err(at)?;
                    let role = StationRole::parse(&role_text)
                        .ok_or_else(|| at(format!("unknown station role '{role_text}'")))?;
                    let (lat, lng) = point(geometry).map_err(at)?;
                    stations.push(Station {
                        id: feature_id,
                        name: feature_name,
                        country: string_member(properties, "country").map_err(at)?,
                        role,
                        lat,
                        lng,
                    });
                }
                "segment" => {
                    let mode_text = string_member(properties, "mode").map_err(at)?;
                    let mode = match mode_text.as_str() {
                        "land" => SegmentMode::Land,
                        "sea" => SegmentMode::Sea,
                        other => return Err(at(format!("unknown segment mode '{other}'"))),
                    };
                    segments.push(Segment {
                        id: feature_id,
                        name: feature_name,
                        from: string_member(properties, "from").map_err(at)?,
                        to: string_member(properties, "to").map_err(at)?,
                        mode,
                        waypoints: line(geometry).map_err(at)?,
                    });
                }
                other => return Err(at(format!("unknown feature kind '{other}'"))),
            }
        }
        let route = Self { id: id.to_owned(), name, description, stations, segments };
        route.validate().map_err(invalid)?;
        Ok(route)
    }

    fn validate(&self) -> Result<(), String> {
        let mut by_id = HashMap::new();
        for station in &self.stations {
            if by_id.insert(station.id.as_str(), station).is_some() {
                return Err(format!("station '{}' is defined twice", station.id));
            }
        }
        let destinations: Vec<_> = self.stations.iter().filter(|s| s.role == StationRole::Destination).collect();
        let [destination] = destinations.as_slice() else {
            return Err(format!("a route has exactly one destination station, found {}", destinations.len()));
        };
        let mut outgoing: HashMap<&str, &Segment> = HashMap::new();
        let mut segment_ids = BTreeSet::new();
        for segment in &self.segments {
            if !segment_ids.insert(segment.id.as_str()) {
                return Err(format!("segment '{}' is defined twice", segment.id));
            }
            for (end, station_id, waypoint) in
                [("from", &segment.from, segment.waypoints.first()), ("to", &segment.to, segment.waypoints.last())]
            {
                let station = by_id
                    .get(station_id.as_str())
                    .ok_or_else(|| format!("segment '{}': '{end}' names unknown station '{station_id}'", segment.id))?;
                let (lat, lng) = *waypoint.expect("a line has at least two points");
                let gap = distance_km((lat, lng), (station.lat, station.lng));
                if gap > ENDPOINT_TOLERANCE_KM {
                    return Err(format!(
                        "segment '{}' {end}s {gap:.1} km away from station '{station_id}'",
                        segment.id
                    ));
                }
            }
            if outgoing.insert(segment.from.as_str(), segment).is_some() {
                return Err(format!("station '{}' has more than one outgoing segment", segment.from));
            }
        }
        if outgoing.contains_key(destination.id.as_str()) {
            return Err(format!("the destination '{}' has an outgoing segment", destination.id));
        }
        for station in &self.stations {
            // Walk downstream; a route is an in-tree, so every walk ends at the
            // destination within as many steps as there are segments.
            let mut at = station.id.as_str();
            let mut steps = 0;
            while at != destination.id {
                let segment = outgoing
                    .get(at)
                    .ok_or_else(|| format!("station '{at}' has no way on to the destination '{}'", destination.id))?;
                at = segment.to.as_str();
                steps += 1;
                if steps > self.segments.len() {
                    return Err(format!("the segments from station '{}' form a cycle", station.id));
                }
            }
        }
        Ok(())
    }

    /// The station that every segment leads to.
    pub fn destination(&self) -> &Station {
        self.stations.iter().find(|s| s.role == StationRole::Destination).expect("a validated route has a destination")
    }

    /// A station by id.
    pub fn station(&self, id: &str) -> Option<&Station> {
        self.stations.iter().find(|s| s.id == id)
    }

    /// A segment by id.
    pub fn segment(&self, id: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.id == id)
    }

    /// The length along the route from `station` to its destination, in
    /// kilometres (following each station's outgoing segment); `None` for a
    /// station the route does not have.
    pub fn km_to_destination(&self, station: &str) -> Option<f64> {
        self.station(station)?;
        let mut at = station;
        let mut km = 0.0;
        for _ in 0..=self.segments.len() {
            let Some(next) = self.segments.iter().find(|s| s.from == at) else { return Some(km) };
            km += next.length_km();
            at = &next.to;
        }
        None
    }

    /// The segments upstream of `segment_id` (those whose flow passes through
    /// it later), nearest first.
    pub fn upstream_segments(&self, segment_id: &str) -> Vec<&Segment> {
        let mut result = Vec::new();
        let mut frontier: Vec<&str> = self.segment(segment_id).map(|s| vec![s.from.as_str()]).unwrap_or_default();
        while let Some(station) = frontier.pop() {
            for segment in self.segments.iter().filter(|s| s.to == station) {
                result.push(segment);
                frontier.insert(0, segment.from.as_str());
            }
        }
        result
    }

    /// The cells of each segment: the cells along the path between consecutive
    /// waypoints at `resolution`, widened by `buffer_rings` rings of neighbours.
    pub fn cells(&self, resolution: Resolution, buffer_rings: u32) -> Result<RouteCells, CoreError> {
        let mut segments = Vec::with_capacity(self.segments.len());
        for segment in &self.segments {
            let path = path_cells(&segment.waypoints, resolution).map_err(|problem| CoreError::InvalidRoute {
                route: self.id.clone(),
                problem: format!("segment '{}': {problem}", segment.id),
            })?;
            let mut cells = BTreeSet::new();
            for cell in path {
                for neighbour in cell.h3o().grid_disk::<Vec<_>>(buffer_rings) {
                    cells.insert(Cell::from_u64(u64::from(neighbour))?);
                }
            }
            segments.push(SegmentCells { segment_id: segment.id.clone(), cells: cells.into_iter().collect() });
        }
        Ok(RouteCells { resolution, buffer_rings, segments })
    }
}

/// Cells along a polyline: each leg is sampled along its great circle at a
/// third of the cell edge length, and consecutive samples that do not land
/// in neighbouring cells are joined with an H3 grid path, so the result is a
/// connected chain of cells.
fn path_cells(waypoints: &[(f64, f64)], resolution: Resolution) -> Result<Vec<Cell>, String> {
    let step_km = resolution.edge_length_km() / 3.0;
    let mut chain: Vec<h3o::CellIndex> = Vec::new();
    for pair in waypoints.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let steps = (distance_km(a, b) / step_km).ceil().max(1.0) as usize;
        for i in 0..=steps {
            let (lat, lng) = interpolate(a, b, i as f64 / steps as f64);
            let cell = LatLng::new(lat, lng).map_err(|e| e.to_string())?.to_cell(resolution.h3o());
            if let Some(&last) = chain.last() {
                if last == cell {
                    continue;
                }
                if !last.is_neighbor_with(cell).unwrap_or(false) {
                    if let Ok(path) = last.grid_path_cells(cell) {
                        // The path starts with `last`, which is already in the chain.
                        chain.extend(path.skip(1).filter_map(Result::ok).take_while(|c| *c != cell));
                    }
                }
            }
            chain.push(cell);
        }
    }
    chain.into_iter().map(|c| Cell::from_u64(u64::from(c)).map_err(|e| e.to_string())).collect()
}

impl Segment {
    /// The length of the segment's path (great circles between its
    /// waypoints), in kilometres.
    pub fn length_km(&self) -> f64 {
        self.waypoints.windows(2).map(|w| distance_km(w[0], w[1])).filter(|d| d.is_finite()).sum()
    }
}

/// Great-circle distance between two (lat, lng) points in kilometres.
fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    match (LatLng::new(a.0, a.1), LatLng::new(b.0, b.1)) {
        (Ok(a), Ok(b)) => a.distance_km(b),
        _ => f64::INFINITY,
    }
}

/// The point at `fraction` of the great circle from `a` to `b`.
fn interpolate(a: (f64, f64), b: (f64, f64), fraction: f64) -> (f64, f64) {
    let to_vector = |(lat, lng): (f64, f64)| {
        let (lat, lng) = (lat.to_radians(), lng.to_radians());
        [lat.cos() * lng.cos(), lat.cos() * lng.sin(), lat.sin()]
    };
    let (va, vb) = (to_vector(a), to_vector(b));
    let dot = (va[0] * vb[0] + va[1] * vb[1] + va[2] * vb[2]).clamp(-1.0, 1.0);
    let angle = dot.acos();
    if angle < 1e-12 {
        return a;
    }
    let wa = ((1.0 - fraction) * angle).sin() / angle.sin();
    let wb = (fraction * angle).sin() / angle.sin();
    let v = [wa * va[0] + wb * vb[0], wa * va[1] + wb * vb[1], wa * va[2] + wb * vb[2]];
    let lat = v[2].atan2((v[0] * v[0] + v[1] * v[1]).sqrt());
    let lng = v[1].atan2(v[0]);
    (lat.to_degrees(), lng.to_degrees())
}

fn string_member(object: &Map<String, Value>, key: &str) -> Result<String, String> {
    match object.get(key) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.clone()),
        Some(_) => Err(format!("'{key}' must be a non-empty string")),
        None => Err(format!("'{key}' is missing")),
    }
}

fn position(value: &Value) -> Result<(f64, f64), String> {
    let pair = value.as_array().filter(|a| a.len() >= 2).ok_or("a position must be [longitude, latitude]")?;
    let lng = pair[0].as_f64().ok_or("a longitude must be a number")?;
    let lat = pair[1].as_f64().ok_or("a latitude must be a number")?;
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lng) {
        return Err(format!("position [{lng}, {lat}] is out of range (GeoJSON is [longitude, latitude])"));
    }
    Ok((lat, lng))
}

fn point(geometry: &Map<String, Value>) -> Result<(f64, f64), String> {
    if geometry.get("type").and_then(Value::as_str) != Some("Point") {
        return Err("a station's geometry must be a Point".into());
    }
    position(geometry.get("coordinates").ok_or("'coordinates' is missing")?)
}

fn line(geometry: &Map<String, Value>) -> Result<Vec<(f64, f64)>, String> {
    if geometry.get("type").and_then(Value::as_str) != Some("LineString") {
        return Err("a segment's geometry must be a LineString".into());
    }
    let coordinates = geometry.get("coordinates").and_then(Value::as_array).ok_or("'coordinates' is missing")?;
    if coordinates.len() < 2 {
        return Err("a LineString needs at least two positions".into());
    }
    coordinates.iter().map(position).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"{
      "type": "FeatureCollection", "name": "Test", "description": "A test corridor.",
      "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1.8587, 50.9513]},
         "properties": {"kind": "station", "id": "calais", "name": "Calais", "country": "FR", "role": "origin"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1.3134, 51.1279]},
         "properties": {"kind": "station", "id": "dover", "name": "Dover", "country": "GB", "role": "destination"}},
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[1.8587, 50.9513], [1.3134, 51.1279]]},
         "properties": {"kind": "segment", "id": "calais-dover", "name": "Strait", "from": "calais", "to": "dover", "mode": "sea"}}
      ]}"#;

    #[test]
    fn parses_and_derives_connected_cells() {
        let route = Route::from_geojson("test", SMALL).unwrap();
        assert_eq!(route.destination().id, "dover");
        let cells = route.cells(Resolution::new(7).unwrap(), 0).unwrap();
        let path = &cells.segments[0].cells;
        // About 43 km at ~1.4 km per res-7 cell: a chain of a few dozen cells.
        assert!((20..80).contains(&path.len()), "{}", path.len());
        let buffered = route.cells(Resolution::new(7).unwrap(), 2).unwrap();
        assert!(buffered.segments[0].cells.len() > 3 * path.len());
        // The path is connected: every cell has a neighbour in the set.
        for cell in path {
            assert!(path.iter().any(|other| other != cell && cell.grid_distance(*other) == Some(1)));
        }
    }

    #[test]
    fn rejects_broken_routes() {
        let no_destination = SMALL.replace("\"destination\"", "\"transit\"");
        assert!(Route::from_geojson("test", &no_destination).unwrap_err().to_string().contains("destination"));
        let unknown_station = SMALL.replace("\"to\": \"dover\"", "\"to\": \"folkestone\"");
        assert!(Route::from_geojson("test", &unknown_station).unwrap_err().to_string().contains("folkestone"));
        let swapped = SMALL.replace("[1.3134, 51.1279]]", "[51.1279, 1.3134]]");
        assert!(Route::from_geojson("test", &swapped).is_err());
        assert!(Route::from_geojson("Bad Id", SMALL).is_err());
    }
}
