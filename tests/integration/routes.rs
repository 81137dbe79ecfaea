//! The shipped routes parse, converge on their destination, and derive
//! connected cell chains with h3o.

use stroom_core::{Resolution, Route, StationRole};

use crate::support::repo_root;

fn shipped_routes() -> Vec<Route> {
    let folder = repo_root().join("data/routes");
    let mut routes = Vec::new();
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        let id = path.file_stem().unwrap().to_string_lossy().into_owned();
        routes.push(Route::from_geojson(&id, &std::fs::read_to_string(&path).unwrap()).unwrap());
    }
    routes.sort_by(|a, b| a.id.cmp(&b.id));
    routes
}

#[test]
fn four_corridors_with_their_destinations() {
    let routes = shipped_routes();
    let ids: Vec<(&str, &str)> = routes.iter().map(|r| (r.id.as_str(), r.destination().id.as_str())).collect();
    assert_eq!(
        ids,
        vec![
            ("central-mediterranean", "ventimiglia"),
            ("channel", "dover"),
            ("eastern-land-border", "ter-apel"),
            ("western-balkans", "ter-apel"),
        ]
    );
    for route in &routes {
        assert!(route.segments.len() >= 3, "{}", route.id);
        assert!(route.stations.iter().any(|s| s.role == StationRole::Origin), "{}", route.id);
    }
}

#[test]
fn segment_cells_are_connected_and_buffered() {
    let resolution = Resolution::new(7).unwrap();
    for route in shipped_routes() {
        let path = route.cells(resolution, 0).unwrap();
        let buffered = route.cells(resolution, 2).unwrap();
        for (segment, (thin, wide)) in route.segments.iter().zip(path.segments.iter().zip(&buffered.segments)) {
            assert!(!thin.cells.is_empty(), "{}/{}", route.id, segment.id);
            assert!(wide.cells.len() > thin.cells.len() * 3, "{}/{}", route.id, segment.id);
            assert!(thin.cells.iter().all(|c| wide.cells.contains(c)));
            assert!(thin.cells.iter().all(|c| c.resolution() == resolution));
            // Connected: from the first cell, neighbours reach every cell.
            let mut reached = vec![thin.cells[0]];
            let mut frontier = vec![thin.cells[0]];
            while let Some(cell) = frontier.pop() {
                for other in &thin.cells {
                    if !reached.contains(other) && cell.grid_distance(*other) == Some(1) {
                        reached.push(*other);
                        frontier.push(*other);
                    }
                }
            }
            assert_eq!(reached.len(), thin.cells.len(), "{}/{} is not one chain", route.id, segment.id);
            // The path starts at the from-station's cell and ends at the to-station's.
            let from = route.station(&segment.from).unwrap();
            let to = route.station(&segment.to).unwrap();
            for station in [from, to] {
                let cell = stroom_core::Cell::from_lat_lng(station.lat, station.lng, resolution).unwrap();
                assert!(thin.cells.contains(&cell), "{}/{} misses station {}", route.id, segment.id, station.id);
            }
        }
    }
}

#[test]
fn upstream_segments_of_the_channel_crossing() {
    let routes = shipped_routes();
    let channel = routes.iter().find(|r| r.id == "channel").unwrap();
    let last = channel.segments.last().unwrap();
    assert_eq!(last.to, "dover");
    let upstream: Vec<&str> = channel.upstream_segments(&last.id).iter().map(|s| s.id.as_str()).collect();
    assert_eq!(upstream.len(), channel.segments.len() - 1);
    assert_eq!(upstream[0], channel.segments[channel.segments.len() - 2].id);
}
