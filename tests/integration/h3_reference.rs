//! stroom's H3 conversions against fixtures from the reference C library
//! (through the Python `h3` package; `data/fixtures/make_h3_fixtures.py`).

use stroom_core::{Cell, Resolution};

use crate::support::repo_root;

fn fixture(name: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(repo_root().join("data/fixtures").join(name)).unwrap();
    text.lines().skip(1).map(|line| line.split(',').map(str::to_owned).collect()).collect()
}

#[test]
fn points_to_cells_match_the_reference() {
    let rows = fixture("h3_points.csv");
    assert!(rows.len() >= 10_000);
    let mut mismatches = Vec::new();
    for row in &rows {
        let (lat, lng): (f64, f64) = (row[0].parse().unwrap(), row[1].parse().unwrap());
        let resolution = Resolution::new(row[2].parse().unwrap()).unwrap();
        let cell = Cell::from_lat_lng(lat, lng, resolution).unwrap();
        if cell.to_string() != row[3] {
            mismatches.push(format!("{lat},{lng} res {resolution}: {cell} != {}", row[3]));
        }
        assert_eq!(Cell::parse(&row[3]).unwrap(), Cell::parse(&cell.to_string()).unwrap());
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first: {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
}

#[test]
fn parents_centres_ranges_and_boundaries_match_the_reference() {
    let rows = fixture("h3_cells.csv");
    assert!(rows.len() >= 2_000);
    for row in rows {
        // cell,res,parent_res,parent,center_lat,center_lng,child_res,child_min,child_max,boundary
        let cell = Cell::parse(&row[0]).unwrap();
        assert_eq!(cell.resolution().get().to_string(), row[1]);
        let parent_res = Resolution::new(row[2].parse().unwrap()).unwrap();
        assert_eq!(cell.parent(parent_res).unwrap().to_string(), row[3], "parent of {}", row[0]);
        // Positions are compared by distance on the sphere, within a
        // millimetre; within 5 cm above 80 degrees of latitude, where h3o and
        // the C library round differently (about 1 cm at resolution 15).
        let (lat, lng) = cell.center();
        let tolerance = |lat: f64| if lat.abs() > 80.0 { 0.05 } else { 1e-3 };
        let gap = metres((lat, lng), (row[4].parse().unwrap(), row[5].parse().unwrap()));
        assert!(gap < tolerance(lat), "centre of {} is {gap} m off", row[0]);
        if !row[7].is_empty() {
            let child_res = Resolution::new(row[6].parse().unwrap()).unwrap();
            let range = cell.descendant_range(child_res).unwrap();
            assert_eq!(Cell::from_u64(*range.start()).unwrap().to_string(), row[7], "first child of {}", row[0]);
            assert_eq!(Cell::from_u64(*range.end()).unwrap().to_string(), row[8], "last child of {}", row[0]);
        }
        let expected: Vec<(f64, f64)> = row[9]
            .split(';')
            .map(|pair| {
                let mut parts = pair.split(' ').map(|v| v.parse::<f64>().unwrap());
                (parts.next().unwrap(), parts.next().unwrap())
            })
            .collect();
        let actual: Vec<(f64, f64)> = cell.h3o().boundary().iter().map(|p| (p.lat(), p.lng())).collect();
        assert_eq!(actual.len(), expected.len(), "boundary of {}", row[0]);
        for (a, e) in actual.iter().zip(&expected) {
            assert!(metres(*a, *e) < tolerance(a.0), "boundary of {}: {a:?} vs {e:?}", row[0]);
        }
    }
}

fn metres(a: (f64, f64), b: (f64, f64)) -> f64 {
    let point = |(lat, lng): (f64, f64)| h3o::LatLng::new(lat, lng).unwrap();
    point(a).distance_m(point(b))
}

#[test]
fn grid_distances_match_the_reference() {
    for row in fixture("h3_distances.csv") {
        let (a, b) = (Cell::parse(&row[0]).unwrap(), Cell::parse(&row[1]).unwrap());
        assert_eq!(a.grid_distance(b).map(|d| d.to_string()), Some(row[2].clone()), "{} {}", row[0], row[1]);
    }
}
