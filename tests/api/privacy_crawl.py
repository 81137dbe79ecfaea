#!/usr/bin/env python3
"""Crawl every GET endpoint of a running stroom API and check that no
response carries a device count below the store's privacy threshold k.

Usage: python3 tests/api/privacy_crawl.py BASE_URL TOKEN

Device counts are the `devices` of route and cell series, the `devices` and
`baseline` of every segment and cell of a nowcast, and the `mean`, `q10`,
`q90` and `observed` of every cell of a map (on both layers). Forecast arrivals are
official counts per station, not device counts, and are not checked. Exits 1
on the first count below k (printing where it is), 0 otherwise.
"""
import datetime
import json
import sys
import urllib.error
import urllib.request

BASE, TOKEN = sys.argv[1].rstrip("/"), sys.argv[2]
if not BASE.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
    sys.exit(f"refusing a non-loopback base URL: {BASE}")


def get(path, parse=True):
    request = urllib.request.Request(BASE + path, headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            body = response.read()
            return response.status, (json.loads(body) if parse else body)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


counts, responses, k = [], 0, None


def check(path, body):
    global k, responses
    responses += 1
    if isinstance(body, dict) and "k" in body:
        k = body["k"] if k is None else max(k, body["k"])
    for point in (body or {}).get("points", []) if isinstance(body, dict) else []:
        counts.append((f"{path} {point['time']}", point["devices"]))
    for part in ("segments", "cells") if "/nowcast" in path else ():
        for entry in (body or {}).get(part, []) if isinstance(body, dict) else []:
            for key in ("devices", "baseline"):
                counts.append((f"{path} {entry['name']} {key}", entry[key]))
    for feature in (body or {}).get("features", []) if isinstance(body, dict) else []:
        props = feature.get("properties", {})
        for key in ("mean", "q10", "q90", "observed"):
            if isinstance(props.get(key), (int, float)):
                counts.append((f"{path} {props.get('hex_id')} {key}", props[key]))


status, routes = get("/v1/routes")
assert status == 200, (status, routes)
for route in routes:
    rid = route["id"]
    status, detail = get(f"/v1/routes/{rid}")
    check(f"/v1/routes/{rid}", detail)
    status, forecast = get(f"/v1/routes/{rid}/forecast")
    check(f"/v1/routes/{rid}/forecast", forecast)
    if status != 200:
        continue
    cutoff = forecast["targets"][0]["cutoff"]
    end = datetime.date.fromisoformat(cutoff)
    start = (end - datetime.timedelta(days=365)).isoformat()
    month = (end - datetime.timedelta(days=28)).isoformat()
    week = (end - datetime.timedelta(days=7)).isoformat()
    for station in {s["id"] for s in detail["stations"]}:
        check(f"/v1/stations/{station}/forecast", get(f"/v1/stations/{station}/forecast")[1])
        status, capacity = get(f"/v1/stations/{station}/capacity")
        assert status in (200, 404), (station, status, capacity)
        check(f"/v1/stations/{station}/capacity", capacity)
    for level in ("segment", "station"):
        path = f"/v1/routes/{rid}/series?from={start}&to={cutoff}&level={level}"
        status, body = get(path)
        assert status == 200, (path, status, body)
        check(path, body)
    path = f"/v1/routes/{rid}/nowcast?cells=1000"
    status, body = get(path)
    assert status == 200, (path, status, body)
    check(path, body)
    earlier = (datetime.date.fromisoformat(body["date"]) - datetime.timedelta(days=7)).isoformat()
    path = f"/v1/routes/{rid}/nowcast?date={earlier}&cells=1000"
    status, body = get(path)
    assert status == 200, (path, status, body)
    check(path, body)
    status, geo = get(f"/v1/routes/{rid}/map.geojson")
    assert status == 200, (rid, status, geo)
    check(f"/v1/routes/{rid}/map.geojson", geo)
    # The nowcast layer: `mean` is the usual count and `observed` the day's devices.
    status, layer = get(f"/v1/routes/{rid}/map.geojson?layer=nowcast")
    assert status == 200, (rid, status, layer)
    check(f"/v1/routes/{rid}/map.geojson?layer=nowcast", layer)
    for fmt in ("svg", "png"):
        status, _ = get(f"/v1/routes/{rid}/map.{fmt}", parse=False)
        responses += 1
    cells = [f["properties"]["hex_id"] for f in geo["features"] if f["properties"].get("hex_id")]
    for cell in cells[:: max(1, len(cells) // 25)]:
        for resolution, first in (("day", month), ("hour", week)):
            path = f"/v1/cells/{cell}/series?from={first}&to={cutoff}&resolution={resolution}"
            status, body = get(path)
            assert status == 200, (path, status, body)
            check(path, body)

# Capacity alerts carry forecast arrivals (official counts), no device count.
status, alerts = get("/v1/alerts?status=all")
assert status == 200, (status, alerts)
check("/v1/alerts", alerts)
assert not any("devices" in alert for alert in alerts["alerts"]), alerts

# Closure scenarios carry forecast arrivals too (baseline and scenario), no
# device count; the page is HTML.
status, scenarios = get("/v1/scenarios")
assert status == 200, (status, scenarios)
check("/v1/scenarios", scenarios)
for scenario in scenarios["scenarios"]:
    status, detail = get(f"/v1/scenarios/{scenario['run_id']}")
    assert status == 200, (status, detail)
    check(f"/v1/scenarios/{scenario['run_id']}", detail)
    assert "devices" not in json.dumps(detail), detail
    status, _ = get(f"/v1/scenarios/{scenario['run_id']}/page.html", parse=False)
    assert status == 200, status
    responses += 1

if k is None:
    sys.exit("no response stated k")
below = [(where, value) for where, value in counts if value < k]
print(f"privacy crawl: {responses} responses, {len(counts)} device counts, k = {k}, below k: {len(below)}")
if below:
    for where, value in below[:10]:
        print(f"  {value} at {where}")
    sys.exit(1)
