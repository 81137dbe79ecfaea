//! The static map as SVG: basemap, hexagons coloured by forecast, the route,
//! labelled stations, a legend, and the facts a reader needs to judge it.
//!
//! The basemap is `data/basemap/countries.geojson`, compiled in. Cells are
//! grouped into one path per colour class (`colour::ColourScale`);
//! suppressed cells are hatched grey (plain grey when they are too small to
//! show the hatching) and cells without a value outlined. Cells narrower
//! than 4.5 units are drawn enlarged, and the footer says so. Station labels
//! are placed greedily, the destination first, away from other labels, the
//! cells and the route.

use std::fmt::Write;

use stroom_core::{SegmentMode, StationRole};

use crate::basemap::{self, ATTRIBUTION};
use crate::colour::ColourScale;
use crate::geometry::{Point, Projection, Rect, cell_ring_near, route_positions};
use crate::text::{escape, format_value, push_coordinate, text_width, wrap};
use crate::{CellValue, Layer, MapSpec};

/// Width of the map in SVG user units (pixels at scale 1).
pub(crate) const WIDTH: f64 = 1200.0;
const MARGIN: f64 = 24.0;
const MAP_WIDTH: f64 = 860.0;
const MAP_HEIGHT: f64 = 680.0;
const PANEL_GAP: f64 = 24.0;

const TITLE_SIZE: f64 = 24.0;
const SUBTITLE_SIZE: f64 = 15.0;
const BODY_SIZE: f64 = 13.0;
const SMALL_SIZE: f64 = 11.0;
const LABEL_SIZE: f64 = 13.0;

/// Font stack: the embedded DejaVu Sans first, so PNG and SVG agree.
pub(crate) const FONT_FAMILY: &str = "DejaVu Sans, Verdana, Arial, sans-serif";

const SEA: &str = "#dfe8ef";
const LAND: &str = "#f3f0ea";
const BORDER: &str = "#a9a39a";
const INK: &str = "#1a1a1a";
const MUTED: &str = "#555555";
/// The ring around a station with an open capacity alert.
const ALERT: &str = "#c0392b";
const NO_VALUE_STROKE: &str = "#6f6f6f";
const HATCH_BACKGROUND: &str = "#e4e4e4";
const HATCH_LINE: &str = "#5c5c5c";
/// Suppressed cells too small to show their hatching are drawn in this grey.
const SUPPRESSED_SMALL: &str = "#a3a3a3";

/// Ids used inside the map's SVG; prefixed so that the map can sit inline in an
/// HTML page next to other SVG.
const CLIP_ID: &str = "stroom-map-clip";
const HATCH_ID: &str = "stroom-map-hatch";
const TITLE_ID: &str = "stroom-map-title";

/// Where the SVG will live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Embedding {
    /// A standalone `.svg` file (with the SVG namespace and a fixed size).
    Standalone,
    /// Inline in an HTML page: no namespace declaration (HTML supplies it) and
    /// a width that follows the page.
    InlineHtml,
}

/// The map as a standalone SVG document, drawn over the embedded Natural Earth
/// basemap.
///
/// The map is 1200 units wide; its height depends on the text. It shows the
/// route's hexagons coloured by forecast mean on a viridis scale (light = low,
/// dark = high) in at most six classes with the breaks in the legend,
/// suppressed cells hatched grey and labelled as such, cells with no forecast
/// outlined only, the route's segments (sea crossings dashed), the stations
/// with their names, a scale bar, and a header and footer with the title,
/// route, forecast date, data vintage, model and uncertainty statement. Text
/// is set in DejaVu Sans, which [`png`](crate::png) embeds.
pub fn svg(spec: &MapSpec) -> String {
    render(spec, Embedding::Standalone)
}

/// The SVG for `embedding`.
pub(crate) fn render(spec: &MapSpec, embedding: Embedding) -> String {
    let mut svg = String::with_capacity(64 * 1024 + spec.cells.len() * 100);

    // Header: the title (wrapped if long) and a subtitle with route and date.
    let title_lines = wrap(&spec.title, WIDTH - 2.0 * MARGIN, TITLE_SIZE);
    let mut y = MARGIN + TITLE_SIZE;
    let mut header = String::new();
    for line in &title_lines {
        let _ = writeln!(
            header,
            r#"<text x="{MARGIN}" y="{y}" font-size="{TITLE_SIZE}" font-weight="bold" fill="{INK}">{}</text>"#,
            escape(line)
        );
        y += TITLE_SIZE * 1.25;
    }
    y += SUBTITLE_SIZE * 0.2;
    let what = match spec.layer {
        Layer::Forecast => "forecast for",
        Layer::Nowcast => "density on",
    };
    let subtitle = format!(
        "{} · {what} {} ({})",
        spec.route.name,
        spec.forecast_date.format("%Y-%m-%d"),
        spec.forecast_date.format("%A")
    );
    let _ = writeln!(
        header,
        r#"<text x="{MARGIN}" y="{y}" font-size="{SUBTITLE_SIZE}" fill="{MUTED}">{}</text>"#,
        escape(&subtitle)
    );
    let frame = Rect { x: MARGIN, y: y + 14.0, width: MAP_WIDTH, height: MAP_HEIGHT };

    // The projection fits the route and its cells.
    let projection = Projection::fit(route_positions(spec.route, spec.cells.iter().map(|c| c.cell)), frame);
    let scale = match spec.layer {
        Layer::Forecast => {
            ColourScale::from_values(&spec.cells.iter().filter_map(CellValue::shown_mean).collect::<Vec<_>>())
        }
        Layer::Nowcast => Some(ColourScale::z_scores()),
    };

    let mut body = String::new();
    let _ = writeln!(body, r#"<g clip-path="url(#{CLIP_ID})">"#);
    let _ = writeln!(
        body,
        r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{SEA}"/>"#,
        frame.x, frame.y, frame.width, frame.height
    );
    draw_basemap(&mut body, &projection);
    draw_cells(&mut body, spec, &projection, scale.as_ref());
    draw_route(&mut body, spec, &projection);
    draw_stations(&mut body, spec, &projection);
    body.push_str("</g>\n");
    draw_scale_bar(&mut body, &projection);
    let _ = writeln!(
        body,
        r##"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#8a8a8a" stroke-width="1"/>"##,
        frame.x, frame.y, frame.width, frame.height
    );

    let panel = Rect {
        x: frame.right() + PANEL_GAP,
        y: frame.y,
        width: WIDTH - frame.right() - PANEL_GAP - MARGIN,
        height: 0.0,
    };
    let panel_bottom = draw_legend(&mut body, spec, scale.as_ref(), panel, cell_enlargement(spec, &projection).1);

    // Footer: date, vintage, model, uncertainty, and how the map was drawn.
    let mut y = frame.bottom().max(panel_bottom) + 26.0;
    let facts = format!(
        "Forecast date: {} · Data vintage: {} · Model: {}",
        spec.forecast_date.format("%Y-%m-%d"),
        spec.vintage,
        spec.model
    );
    let uncertainty = format!("Uncertainty: {}", spec.uncertainty);
    for (text, size, weight, colour) in [(facts, BODY_SIZE, "bold", INK), (uncertainty, BODY_SIZE, "normal", INK)] {
        for line in wrap(&text, WIDTH - 2.0 * MARGIN, size) {
            let _ = writeln!(
                body,
                r#"<text x="{MARGIN}" y="{y}" font-size="{size}" font-weight="{weight}" fill="{colour}">{}</text>"#,
                escape(&line)
            );
            y += size * 1.45;
        }
    }
    let resolution = spec.cells.first().map(|c| c.cell.resolution());
    let enlarged_note =
        if cell_enlargement(spec, &projection).1 { ", drawn enlarged to stay visible at this scale" } else { "" };
    let method = match resolution {
        Some(r) => format!(
            "Hexagons: H3 cells at resolution {r} (about {} km across{enlarged_note}), coloured by {}. \
             Projection: Web Mercator. {ATTRIBUTION}.",
            format_value(2.0 * r.edge_length_km()),
            match spec.layer {
                Layer::Forecast => "forecast mean",
                Layer::Nowcast => "robust z-score against the same weekday of the previous weeks",
            }
        ),
        None => format!("Projection: Web Mercator. {ATTRIBUTION}."),
    };
    for line in wrap(&method, WIDTH - 2.0 * MARGIN, SMALL_SIZE) {
        let _ = writeln!(
            body,
            r#"<text x="{MARGIN}" y="{y}" font-size="{SMALL_SIZE}" fill="{MUTED}">{}</text>"#,
            escape(&line)
        );
        y += SMALL_SIZE * 1.45;
    }
    let height = (y + MARGIN - SMALL_SIZE).ceil();

    // Assemble: root element, defs, white page, header, body.
    match embedding {
        Embedding::Standalone => {
            let _ = writeln!(
                svg,
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="{FONT_FAMILY}" role="img" aria-labelledby="{TITLE_ID}">"#
            );
        }
        Embedding::InlineHtml => {
            let _ = writeln!(
                svg,
                r#"<svg class="map" width="100%" viewBox="0 0 {WIDTH} {height}" font-family="{FONT_FAMILY}" role="img" aria-labelledby="{TITLE_ID}">"#
            );
        }
    }
    let _ = writeln!(svg, r#"<title id="{TITLE_ID}">{}</title>"#, escape(&spec.title));
    let _ = writeln!(
        svg,
        r#"<defs><clipPath id="{CLIP_ID}"><rect x="{}" y="{}" width="{}" height="{}"/></clipPath>"#,
        frame.x, frame.y, frame.width, frame.height
    );
    let _ = writeln!(
        svg,
        r#"<pattern id="{HATCH_ID}" patternUnits="userSpaceOnUse" width="5" height="5" patternTransform="rotate(45)"><rect width="5" height="5" fill="{HATCH_BACKGROUND}"/><line x1="1" y1="0" x2="1" y2="5" stroke="{HATCH_LINE}" stroke-width="1.6"/></pattern></defs>"#
    );
    let _ = writeln!(svg, r##"<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>"##);
    svg.push_str(&header);
    svg.push_str(&body);
    svg.push_str("</svg>\n");
    svg
}

/// Appends a closed ring as path data, dropping vertices closer than
/// `min_step` to the previous one. Returns false when too little is left.
fn ring_path(d: &mut String, points: impl Iterator<Item = Point>, min_step: f64) -> bool {
    let start = d.len();
    let mut last: Option<Point> = None;
    let mut count = 0;
    for p in points {
        if let Some(l) = last
            && (p.0 - l.0).abs() < min_step
            && (p.1 - l.1).abs() < min_step
        {
            continue;
        }
        d.push(if last.is_none() { 'M' } else { 'L' });
        push_coordinate(d, p.0);
        d.push(' ');
        push_coordinate(d, p.1);
        last = Some(p);
        count += 1;
    }
    if count < 3 {
        d.truncate(start);
        return false;
    }
    d.push('Z');
    true
}

fn draw_basemap(out: &mut String, projection: &Projection) {
    let ((west, south), (east, north)) = projection.bounds();
    for country in basemap::countries() {
        let ((c_west, c_south), (c_east, c_north)) = country.bbox;
        if c_east < west || c_west > east || c_north < south || c_south > north {
            continue;
        }
        let mut d = String::new();
        for ring in country.polygons.iter().flatten() {
            ring_path(&mut d, ring.iter().map(|&p| projection.project(p)), 0.6);
        }
        if !d.is_empty() {
            let _ = writeln!(
                out,
                r#"<path d="{d}" fill="{LAND}" fill-rule="evenodd" stroke="{BORDER}" stroke-width="0.7" stroke-linejoin="round"><title>{}</title></path>"#,
                escape(&country.name)
            );
        }
    }
}

/// Hexagons narrower than this (in page units) are drawn enlarged to this
/// width, so that a route-wide map still shows them.
const MIN_CELL_WIDTH: f64 = 4.5;
/// Every hexagon is drawn this much wider than it is, which closes the
/// anti-aliasing seams between neighbours of different classes.
const SEAM_OVERLAP: f64 = 0.4;

/// How much wider than their true size cells of `spec` are drawn on this map
/// (1 when they are wide enough to see), and whether that enlarges them
/// visibly.
fn cell_enlargement(spec: &MapSpec, projection: &Projection) -> (f64, bool) {
    let Some(first) = spec.cells.first() else { return (1.0, false) };
    let cell_width = 2.0 * first.cell.resolution().edge_length_km() / projection.km_per_unit();
    let drawn = (cell_width + SEAM_OVERLAP).max(MIN_CELL_WIDTH);
    (drawn / cell_width, cell_width < MIN_CELL_WIDTH)
}

fn draw_cells(out: &mut String, spec: &MapSpec, projection: &Projection, scale: Option<&ColourScale>) {
    let center_lng = projection.center_lng();
    let (factor, enlarged) = cell_enlargement(spec, projection);
    let classes = scale.map_or(0, ColourScale::classes);
    let mut by_class = vec![String::new(); classes];
    let mut suppressed = String::new();
    let mut no_value = String::new();
    let mut points: Vec<Point> = Vec::with_capacity(8);
    for value in &spec.cells {
        let Some(ring) = cell_ring_near(value.cell, center_lng) else { continue };
        let target = if value.suppressed {
            &mut suppressed
        } else if let (Some(shown), Some(scale)) = (value.shown(spec.layer), scale) {
            &mut by_class[scale.class_of(shown)]
        } else {
            &mut no_value
        };
        points.clear();
        points.extend(ring.iter().map(|&p| projection.project(p)));
        let n = points.len() as f64;
        let (cx, cy) = points.iter().fold((0.0, 0.0), |(x, y), p| (x + p.0 / n, y + p.1 / n));
        let scaled = points.iter().map(|&(x, y)| (cx + (x - cx) * factor, cy + (y - cy) * factor));
        ring_path(target, scaled, 0.0);
    }
    if !no_value.is_empty() {
        let _ = writeln!(
            out,
            r#"<path class="cells-no-value" d="{no_value}" fill="none" stroke="{NO_VALUE_STROKE}" stroke-width="0.6"/>"#
        );
    }
    // Higher classes are drawn later, so where enlarged cells overlap the
    // higher value shows.
    if let Some(scale) = scale {
        for (class, d) in by_class.iter().enumerate() {
            if !d.is_empty() {
                let _ = writeln!(out, r#"<path class="cells-class-{class}" d="{d}" fill="{}"/>"#, scale.colour(class));
            }
        }
    }
    // Suppressed cells last, so a neighbour never hides them; too small for
    // their hatching to show, they are plain grey.
    if !suppressed.is_empty() {
        let fill = if enlarged { SUPPRESSED_SMALL.to_owned() } else { format!("url(#{HATCH_ID})") };
        let _ = writeln!(
            out,
            r#"<path class="cells-suppressed" d="{suppressed}" fill="{fill}" stroke="{HATCH_LINE}" stroke-width="0.4"/>"#
        );
    }
}

fn segment_points(projection: &Projection, waypoints: &[(f64, f64)]) -> String {
    let mut points = String::new();
    for (i, &(lat, lng)) in waypoints.iter().enumerate() {
        let p = projection.project((lng, lat));
        if i > 0 {
            points.push(' ');
        }
        push_coordinate(&mut points, p.0);
        points.push(',');
        push_coordinate(&mut points, p.1);
    }
    points
}

/// Widths of the route line and its white casing: bold on an empty map, thin
/// over cells so that the cells' colours stay visible on both sides.
fn route_widths(spec: &MapSpec) -> (f64, f64) {
    if spec.cells.is_empty() { (2.0, 4.5) } else { (1.1, 0.0) }
}

fn draw_route(out: &mut String, spec: &MapSpec, projection: &Projection) {
    let (width, casing) = route_widths(spec);
    for segment in &spec.route.segments {
        let points = segment_points(projection, &segment.waypoints);
        let dash = if segment.mode == SegmentMode::Sea { r#" stroke-dasharray="7 5""# } else { "" };
        if casing > 0.0 {
            let _ = writeln!(
                out,
                r##"<polyline points="{points}" fill="none" stroke="#ffffff" stroke-opacity="0.9" stroke-width="{casing}" stroke-linejoin="round" stroke-linecap="round"/>"##
            );
        }
        let _ = writeln!(
            out,
            r#"<polyline class="route" points="{points}" fill="none" stroke="{INK}" stroke-width="{width}" stroke-linejoin="round"{dash}/>"#
        );
    }
}

/// Marker radius of a station.
fn station_radius(role: StationRole) -> f64 {
    if role == StationRole::Destination { 6.5 } else { 4.5 }
}

fn station_marker(out: &mut String, (x, y): Point, role: StationRole) {
    let r = station_radius(role);
    if role == StationRole::Destination {
        let _ = writeln!(
            out,
            r##"<circle cx="{x:.2}" cy="{y:.2}" r="{r}" fill="{INK}" stroke="#ffffff" stroke-width="2"/><circle cx="{x:.2}" cy="{y:.2}" r="2" fill="#ffffff"/>"##
        );
    } else {
        let _ = writeln!(
            out,
            r##"<circle cx="{x:.2}" cy="{y:.2}" r="{r}" fill="#ffffff" stroke="{INK}" stroke-width="1.8"/>"##
        );
    }
}

/// The red ring drawn under a station with an open capacity alert.
fn alert_ring(out: &mut String, (x, y): Point, role: StationRole) {
    let r = station_radius(role) + 4.0;
    let _ = writeln!(
        out,
        r#"<circle class="capacity-alert" cx="{x:.2}" cy="{y:.2}" r="{r}" fill="none" stroke="{ALERT}" stroke-width="3"/>"#
    );
}

/// Boxes that labels should not cover: every drawn cell and points along the
/// route line.
fn label_obstacles(spec: &MapSpec, projection: &Projection) -> Vec<Rect> {
    let (factor, _) = cell_enlargement(spec, projection);
    let mut obstacles = Vec::with_capacity(spec.cells.len() + 256);
    if let Some(first) = spec.cells.first() {
        let half = first.cell.resolution().edge_length_km() / projection.km_per_unit() * factor;
        for value in &spec.cells {
            let (lat, lng) = value.cell.center();
            let (x, y) = projection.project((lng, lat));
            obstacles.push(Rect { x: x - half, y: y - half, width: 2.0 * half, height: 2.0 * half });
        }
    }
    for segment in &spec.route.segments {
        let points: Vec<Point> = segment.waypoints.iter().map(|&(lat, lng)| projection.project((lng, lat))).collect();
        for pair in points.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let steps = ((b.0 - a.0).hypot(b.1 - a.1) / 3.0).ceil().max(1.0) as usize;
            for i in 0..=steps {
                let t = i as f64 / steps as f64;
                let (x, y) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
                obstacles.push(Rect { x: x - 1.5, y: y - 1.5, width: 3.0, height: 3.0 });
            }
        }
    }
    obstacles
}

fn draw_stations(out: &mut String, spec: &MapSpec, projection: &Projection) {
    let frame = projection.frame();
    let obstacles = label_obstacles(spec, projection);
    let stations: Vec<_> = spec.route.stations.iter().map(|s| (s, projection.project((s.lng, s.lat)))).collect();
    let mut occupied: Vec<Rect> = stations
        .iter()
        .map(|(s, (x, y))| {
            let r = station_radius(s.role) + 1.0;
            Rect { x: x - r, y: y - r, width: 2.0 * r, height: 2.0 * r }
        })
        .collect();
    for (station, point) in &stations {
        if spec.alert_stations.contains(&station.id) {
            alert_ring(out, *point, station.role);
        }
        station_marker(out, *point, station.role);
    }
    // The destination is labelled first so it gets the best place.
    let mut order: Vec<usize> = (0..stations.len()).collect();
    order.sort_by_key(|&i| stations[i].0.role != StationRole::Destination);
    for i in order {
        let (station, (x, y)) = stations[i];
        let label = &station.name;
        let width = text_width(label, LABEL_SIZE);
        let gap = station_radius(station.role) + 4.0;
        let ascent = LABEL_SIZE * 0.75;
        // Candidate anchors: (text x, baseline y, anchor, box left).
        let candidates = [
            (x + gap, y + ascent / 2.0, "start", x + gap),
            (x - gap, y + ascent / 2.0, "end", x - gap - width),
            (x, y - gap - 2.0, "middle", x - width / 2.0),
            (x, y + gap + ascent + 1.0, "middle", x - width / 2.0),
            (x + gap * 0.7, y - gap * 0.7, "start", x + gap * 0.7),
            (x + gap * 0.7, y + gap * 0.7 + ascent, "start", x + gap * 0.7),
            (x - gap * 0.7, y - gap * 0.7, "end", x - gap * 0.7 - width),
            (x - gap * 0.7, y + gap * 0.7 + ascent, "end", x - gap * 0.7 - width),
        ];
        let boxed = |&(_, baseline, _, left): &(f64, f64, &str, f64)| Rect {
            x: left - 2.0,
            y: baseline - ascent - 2.0,
            width: width + 4.0,
            height: LABEL_SIZE + 4.0,
        };
        // The place that covers least: leaving the frame is worst, covering
        // another label or station next, covering cells or the route least bad.
        let cost = |candidate: &(f64, f64, &str, f64)| {
            let b = boxed(candidate);
            let outside = if frame.contains(&b) { 0 } else { 1_000_000 };
            let labels = occupied.iter().filter(|o| o.intersects(&b)).count() * 10_000;
            let cells = obstacles.iter().filter(|o| o.intersects(&b)).count();
            outside + labels + cells
        };
        // `min_by_key` keeps the first of equal costs, so the order above is the preference.
        let chosen = candidates.iter().min_by_key(|c| cost(c)).expect("there are candidates");
        occupied.push(boxed(chosen));
        let (tx, ty, anchor, _) = *chosen;
        let weight = if station.role == StationRole::Destination { "bold" } else { "normal" };
        let _ = writeln!(
            out,
            r##"<text class="station-label" x="{tx:.2}" y="{ty:.2}" text-anchor="{anchor}" font-size="{LABEL_SIZE}" font-weight="{weight}" fill="{INK}" stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke">{}</text>"##,
            escape(label)
        );
    }
}

fn draw_scale_bar(out: &mut String, projection: &Projection) {
    let km_per_unit = projection.km_per_unit();
    let target_km = 140.0 * km_per_unit;
    let magnitude = 10f64.powi(target_km.log10().floor() as i32);
    let nice_km = [5.0, 2.0, 1.0].iter().map(|m| m * magnitude).find(|&km| km <= target_km).unwrap_or(magnitude);
    let length = nice_km / km_per_unit;
    let frame = projection.frame();
    let (x, y) = (frame.x + 14.0, frame.bottom() - 16.0);
    let label = format!("{} km", format_value(nice_km));
    let _ = writeln!(
        out,
        r##"<g class="scale-bar"><rect x="{:.2}" y="{:.2}" width="{:.2}" height="30" fill="#ffffff" fill-opacity="0.8"/><path d="M{x:.2} {:.2}V{y:.2}H{:.2}V{:.2}" fill="none" stroke="{INK}" stroke-width="1.5"/><text x="{:.2}" y="{:.2}" font-size="{SMALL_SIZE}" fill="{INK}">{}</text></g>"##,
        x - 6.0,
        y - 20.0,
        length + 12.0 + text_width(&label, SMALL_SIZE) + 4.0,
        y - 5.0,
        x + length,
        y - 5.0,
        x + length + 5.0,
        y,
        escape(&label)
    );
}

/// Writes `text` wrapped to `width`, one `<text>` per line, advancing `y`.
#[allow(clippy::too_many_arguments, reason = "a private drawing helper; a struct would only rename the arguments")]
fn text_lines(out: &mut String, text: &str, x: f64, y: &mut f64, size: f64, weight: &str, colour: &str, width: f64) {
    for line in wrap(text, width, size) {
        let _ = writeln!(
            out,
            r#"<text x="{x:.2}" y="{:.2}" font-size="{size}" font-weight="{weight}" fill="{colour}">{}</text>"#,
            *y,
            escape(&line)
        );
        *y += size * 1.35;
    }
}

/// Width and height of a legend swatch.
const SWATCH_WIDTH: f64 = 26.0;
const SWATCH_HEIGHT: f64 = 18.0;

/// One legend row: a swatch drawn at (x, top) and its wrapped label.
fn legend_row(out: &mut String, panel: Rect, y: &mut f64, swatch: &str, label: &str) {
    let top = *y;
    let _ = writeln!(out, r#"<g transform="translate({:.2} {top:.2})">{swatch}</g>"#, panel.x);
    let text_x = panel.x + SWATCH_WIDTH + 10.0;
    let mut text_y = top + 13.5;
    text_lines(out, label, text_x, &mut text_y, BODY_SIZE, "normal", INK, panel.right() - text_x);
    // The next row starts below both the swatch and the label.
    *y = (top + SWATCH_HEIGHT).max(text_y - BODY_SIZE * 1.35 + 4.0) + 7.0;
}

/// Draws the legend into `panel` and returns its bottom edge. `small_cells`
/// says that suppressed cells are drawn plain grey rather than hatched.
fn draw_legend(out: &mut String, spec: &MapSpec, scale: Option<&ColourScale>, panel: Rect, small_cells: bool) -> f64 {
    let mut y = panel.y + 16.0;
    let _ = writeln!(out, r#"<g class="legend">"#);
    text_lines(out, "Forecast (mean)", panel.x, &mut y, 15.0, "bold", INK, panel.width);
    text_lines(out, &spec.value_label, panel.x, &mut y, BODY_SIZE, "normal", MUTED, panel.width);
    y += 2.0;
    let rect = |class: &str, fill: &str, stroke: &str, stroke_width: f64| {
        format!(
            r#"<rect class="{class}" width="{SWATCH_WIDTH}" height="{SWATCH_HEIGHT}" fill="{fill}" stroke="{stroke}" stroke-width="{stroke_width}"/>"#
        )
    };
    match scale {
        Some(scale) => {
            // Highest class first, as readers expect "more" at the top.
            for class in (0..scale.classes()).rev() {
                let swatch = rect("legend-class", &scale.colour(class), "#777777", 0.5);
                legend_row(out, panel, &mut y, &swatch, &scale.label(class));
            }
        }
        None => legend_row(out, panel, &mut y, "", "No forecast values on this map"),
    }
    y += 6.0;
    let hatch = if small_cells { SUPPRESSED_SMALL.to_owned() } else { format!("url(#{HATCH_ID})") };
    let label = "Suppressed: count below the privacy threshold, no value shown";
    legend_row(out, panel, &mut y, &rect("legend-suppressed", &hatch, HATCH_LINE, 0.8), label);
    let no_value = match spec.layer {
        Layer::Forecast => "No forecast for this cell",
        Layer::Nowcast => "No score: too few weeks of history",
    };
    legend_row(out, panel, &mut y, &rect("legend-no-value", "none", NO_VALUE_STROKE, 1.2), no_value);
    y += 6.0;
    let (width, _) = route_widths(spec);
    let line = |dash: &str| {
        let middle = SWATCH_HEIGHT / 2.0;
        format!(r#"<path d="M0 {middle}H{SWATCH_WIDTH}" stroke="{INK}" stroke-width="{width}"{dash}/>"#)
    };
    legend_row(out, panel, &mut y, &line(""), "Route segment over land");
    if spec.route.segments.iter().any(|s| s.mode == SegmentMode::Sea) {
        legend_row(out, panel, &mut y, &line(r#" stroke-dasharray="7 5""#), "Sea crossing");
    }
    for (role, label) in [(StationRole::Transit, "Station"), (StationRole::Destination, "Destination")] {
        let mut marker = String::new();
        station_marker(&mut marker, (SWATCH_WIDTH / 2.0, SWATCH_HEIGHT / 2.0), role);
        legend_row(out, panel, &mut y, marker.trim_end(), label);
    }
    if !spec.alert_stations.is_empty() {
        let mut marker = String::new();
        let centre = (SWATCH_WIDTH / 2.0, SWATCH_HEIGHT / 2.0);
        alert_ring(&mut marker, centre, StationRole::Transit);
        station_marker(&mut marker, centre, StationRole::Transit);
        legend_row(out, panel, &mut y, marker.trim_end(), "Capacity alert open");
    }

    // Counts, so that suppression is visible rather than silent.
    let forecast = spec.cells.iter().filter(|c| c.shown(spec.layer).is_some()).count();
    let suppressed = spec.cells.iter().filter(|c| c.suppressed).count();
    let empty = spec.cells.len() - forecast - suppressed;
    y += 8.0;
    let summary = format!(
        "{} cells: {forecast} with a {}, {suppressed} suppressed, {empty} without a value.",
        spec.cells.len(),
        if spec.layer == Layer::Nowcast { "score" } else { "forecast" }
    );
    text_lines(out, &summary, panel.x, &mut y, SMALL_SIZE, "normal", MUTED, panel.width);
    out.push_str("</g>\n");
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{cell_values, route, spec};

    /// Parses the SVG the way the PNG renderer does: well-formed XML that
    /// resvg accepts.
    fn check_well_formed(svg: &str) {
        resvg::usvg::Tree::from_str(svg, &resvg::usvg::Options::default()).expect("the SVG parses");
    }

    #[test]
    fn the_nowcast_layer_colours_z_scores_on_a_fixed_diverging_scale() {
        let route = route("channel");
        let mut cells = cell_values(&route, 6, 1);
        for (i, c) in cells.iter_mut().enumerate() {
            c.z = Some(if i == 0 { 8.0 } else { 0.2 });
        }
        cells[1].z = None;
        let mut spec = spec(&route, cells);
        spec.layer = Layer::Nowcast;
        let svg = render(&spec, Embedding::Standalone);
        check_well_formed(&svg);
        assert!(svg.contains("density on 2025-11-17"), "the subtitle names the scored day");
        assert!(svg.contains("far above usual") && svg.contains("robust z-score"));
        // One cell far above (red), the rest near usual (white), one without a score.
        assert_eq!(svg.matches(r##"class="cells-class-6" d="##).count(), 1);
        assert!(svg.contains(r##"class="cells-class-3""##) && svg.contains("#b2182b"));
        assert!(svg.contains("with a score") && svg.contains("No score"));
        let geo: serde_json::Value = serde_json::from_str(&crate::geojson(&spec)).unwrap();
        assert_eq!(geo["layer"], "nowcast");
        let first = &geo["features"][0]["properties"];
        assert_eq!((first["z"].as_f64(), first["status"].as_str()), (Some(8.0), Some("scored")));
        assert_eq!(geo["features"][1]["properties"]["status"], "no_value");
    }

    #[test]
    fn svg_states_title_date_vintage_model_uncertainty_and_legend() {
        let route = route("central-mediterranean");
        let spec = spec(&route, cell_values(&route, 6, 1));
        let svg = svg(&spec);
        check_well_formed(&svg);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        for text in [
            "Central Mediterranean: forecast density along the route",
            "2025-11-17",
            "Monday",
            "Data vintage: density v42, arrivals v7 (data to 2025-11-10)",
            "Model: ridge-upstream-v1",
            "Uncertainty: The 80% interval held the actual value on 78% of backtest days.",
            "Forecast (mean)",
            "devices per cell and day",
            "Suppressed: count below",
            "No forecast for this cell",
            "Sea crossing",
            "Basemap: Natural",
        ] {
            assert!(svg.contains(text), "the map lacks '{text}'");
        }
        for station in &route.stations {
            assert!(svg.contains(&format!(">{}</text>", escape(&station.name))), "{} unlabelled", station.name);
        }
        // One legend swatch per class, the breaks as labels, and a path of
        // cells for each class that has cells.
        let scale =
            ColourScale::from_values(&spec.cells.iter().filter_map(CellValue::shown_mean).collect::<Vec<_>>()).unwrap();
        assert_eq!(scale.classes(), 6);
        assert_eq!(svg.matches(r#"class="legend-class""#).count(), scale.classes());
        for class in 0..scale.classes() {
            assert!(svg.contains(&format!(">{}</text>", scale.label(class))), "legend label {}", scale.label(class));
            assert!(svg.contains(&format!(r#"class="cells-class-{class}""#)));
        }
        assert!(svg.contains(r#"class="cells-suppressed""#) && svg.contains(r#"class="cells-no-value""#));
        assert!(svg.contains(r#"class="legend-suppressed""#) && svg.contains(r#"class="legend-no-value""#));
    }

    #[test]
    fn every_cell_is_drawn_once_in_its_class() {
        let route = route("channel");
        let spec = spec(&route, cell_values(&route, 8, 1));
        let svg = svg(&spec);
        let scale =
            ColourScale::from_values(&spec.cells.iter().filter_map(CellValue::shown_mean).collect::<Vec<_>>()).unwrap();
        let path_of = |class: &str| {
            let prefix = format!(r#"class="{class}" d=""#);
            let start = svg.find(&prefix).unwrap_or_else(|| panic!("{class}")) + prefix.len();
            let d = &svg[start..];
            d[..d.find('"').unwrap()].matches('Z').count()
        };
        let suppressed = spec.cells.iter().filter(|c| c.suppressed).count();
        let empty = spec.cells.iter().filter(|c| !c.suppressed && c.shown_mean().is_none()).count();
        assert_eq!(path_of("cells-suppressed"), suppressed);
        assert_eq!(path_of("cells-no-value"), empty);
        for class in 0..scale.classes() {
            let expected =
                spec.cells.iter().filter_map(CellValue::shown_mean).filter(|&m| scale.class_of(m) == class).count();
            assert_eq!(path_of(&format!("cells-class-{class}")), expected, "class {class}");
        }
    }

    #[test]
    fn user_text_is_escaped_and_long_text_wraps() {
        let route = route("channel");
        let mut spec = spec(&route, Vec::new());
        spec.title = "Arrivals <script>alert(1)</script> & more".to_owned();
        spec.uncertainty = "word ".repeat(120);
        let svg = svg(&spec);
        check_well_formed(&svg);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("Arrivals &lt;script&gt;alert(1)&lt;/script&gt; &amp; more"));
        assert!(svg.contains(">No forecast values on"));
        let uncertainty_lines = svg.lines().filter(|l| l.contains(">word word")).count();
        assert!(uncertainty_lines >= 3, "{uncertainty_lines}");
    }

    #[test]
    fn inline_svg_has_no_namespace_url() {
        let route = route("eastern-land-border");
        let spec = spec(&route, cell_values(&route, 6, 0));
        let inline = render(&spec, Embedding::InlineHtml);
        assert!(!inline.contains("http"));
        assert!(inline.starts_with("<svg class=\"map\""));
    }
}
