// Builds data/basemap/countries.geojson from the Natural Earth 1:50m country
// outlines in the npm package `world-atlas` (TopoJSON), converted with the npm
// package `topojson-client`, cropped to Europe, North Africa and the Middle
// East and rounded to 0.001 degrees, so that the committed file stays small
// (about 300 kB) without losing any of the source's 1:50m detail.
//
// Usage, from the repository root (any scratch folder works for the packages):
//
//   scratch=$(mktemp -d)
//   npm install --prefix "$scratch" world-atlas@2.0.2 topojson-client@3.1.0
//   node data/basemap/make_basemap.mjs "$scratch/node_modules"
//
// The output is deterministic for given package versions.

import { createRequire } from "node:module";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const modules = process.argv[2];
if (!modules) {
  console.error("usage: node make_basemap.mjs <node_modules folder with world-atlas and topojson-client>");
  process.exit(2);
}
const require = createRequire(join(modules, "resolver.js"));
const topojson = require("topojson-client");
const atlasVersion = require("world-atlas/package.json").version;
const clientVersion = require("topojson-client/package.json").version;
const topology = JSON.parse(readFileSync(require.resolve("world-atlas/countries-50m.json"), "utf8"));

// The crop, in degrees: west, south, east, north.
const CROP = { west: -25, south: 25, east: 50, north: 72 };
// Coordinates are rounded to this many decimals (0.001 degrees is about 100 m,
// finer than the 1:50m source).
const DECIMALS = 3;

// Sutherland-Hodgman clipping of one ring against one edge of the crop.
function clipEdge(ring, inside, intersect) {
  const out = [];
  for (let i = 0; i < ring.length; i++) {
    const current = ring[i];
    const previous = ring[(i + ring.length - 1) % ring.length];
    const currentIn = inside(current);
    const previousIn = inside(previous);
    if (currentIn) {
      if (!previousIn) out.push(intersect(previous, current));
      out.push(current);
    } else if (previousIn) {
      out.push(intersect(previous, current));
    }
  }
  return out;
}

const atX = (a, b, x) => [x, a[1] + ((b[1] - a[1]) * (x - a[0])) / (b[0] - a[0])];
const atY = (a, b, y) => [a[0] + ((b[0] - a[0]) * (y - a[1])) / (b[1] - a[1]), y];

function clipRing(ring) {
  // The closing point is dropped while clipping and restored at the end.
  let points = ring.slice(0, -1);
  points = clipEdge(points, (p) => p[0] >= CROP.west, (a, b) => atX(a, b, CROP.west));
  points = clipEdge(points, (p) => p[0] <= CROP.east, (a, b) => atX(a, b, CROP.east));
  points = clipEdge(points, (p) => p[1] >= CROP.south, (a, b) => atY(a, b, CROP.south));
  points = clipEdge(points, (p) => p[1] <= CROP.north, (a, b) => atY(a, b, CROP.north));
  return points;
}

const round = (v) => Number(v.toFixed(DECIMALS));

function signedArea(ring) {
  let area = 0;
  for (let i = 0; i + 1 < ring.length; i++) area += ring[i][0] * ring[i + 1][1] - ring[i + 1][0] * ring[i][1];
  return area / 2;
}

function cleanRing(points, exterior) {
  const rounded = [];
  for (const p of points) {
    const q = [round(p[0]), round(p[1])];
    const last = rounded[rounded.length - 1];
    if (!last || last[0] !== q[0] || last[1] !== q[1]) rounded.push(q);
  }
  while (rounded.length > 1 && rounded[0][0] === rounded.at(-1)[0] && rounded[0][1] === rounded.at(-1)[1]) rounded.pop();
  if (rounded.length < 3) return null;
  rounded.push(rounded[0]);
  const area = signedArea(rounded);
  if (Math.abs(area) < 1e-6) return null;
  // RFC 7946: exterior rings counter-clockwise, holes clockwise.
  if ((area > 0) !== exterior) rounded.reverse();
  return rounded;
}

const collection = topojson.feature(topology, topology.objects.countries);
const features = [];
for (const feature of collection.features) {
  if (!feature.geometry) continue;
  const polygons = feature.geometry.type === "Polygon" ? [feature.geometry.coordinates] : feature.geometry.coordinates;
  const kept = [];
  for (const polygon of polygons) {
    const exterior = cleanRing(clipRing(polygon[0]), true);
    if (!exterior) continue;
    const holes = polygon.slice(1).map((ring) => cleanRing(clipRing(ring), false)).filter(Boolean);
    kept.push([exterior, ...holes]);
  }
  if (kept.length === 0) continue;
  features.push({
    type: "Feature",
    properties: { name: feature.properties.name, iso_n3: feature.id ?? null },
    geometry: kept.length === 1 ? { type: "Polygon", coordinates: kept[0] } : { type: "MultiPolygon", coordinates: kept },
  });
}
// Sorted by code point, so that the order does not depend on the ICU version.
features.sort((a, b) => (a.properties.name < b.properties.name ? -1 : a.properties.name > b.properties.name ? 1 : 0));

const output = {
  type: "FeatureCollection",
  source: `Natural Earth 1:50m admin-0 countries via world-atlas ${atlasVersion} (countries-50m.json), converted with topojson-client ${clientVersion}; cropped to lon ${CROP.west}..${CROP.east}, lat ${CROP.south}..${CROP.north}`,
  features,
};
const text = "{\"type\":\"FeatureCollection\",\"source\":" + JSON.stringify(output.source) + ",\"features\":[\n" +
  features.map((f) => JSON.stringify(f)).join(",\n") + "\n]}\n";
const target = join(dirname(fileURLToPath(import.meta.url)), "countries.geojson");
writeFileSync(target, text);
console.log(`${features.length} countries, ${text.length} bytes written to ${target}`);
