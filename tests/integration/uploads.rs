//! Uploads over HTTP (`POST /v1/ingest/density`, `/v1/ingest/arrivals`) to
//! the real server: the same tables as the command line's ingest of the
//! same files, compressed bodies by header and by content, Parquet with
//! other codecs, repeated bodies answered without a write, refused files
//! named by line, column and value with the tables unchanged, the limits
//! and roles, concurrent uploads, and the audit log's record of each.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, GzipLevel};
use datafusion::parquet::file::properties::WriterProperties;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::{Reply, create_key};
use crate::support::{repo_root, stroom};

/// Hourly counts at a few points near Calais and Dunkirk over `days` days
/// from `first_day` (of May 2024), some below k = 15 (suppressed), some
/// points sharing a cell (summed).
fn density_csv(first_day: u32, days: u32) -> String {
    let points = [(50.95, 1.85), (50.951, 1.851), (51.03, 2.37), (50.72, 1.61)];
    let mut text = String::from("ts,lat,lon,count\n");
    for day in first_day..first_day + days {
        for hour in 0..24u32 {
            for (i, (lat, lon)) in points.iter().enumerate() {
                let count = (day * 7 + hour * 3 + i as u32 * 11) % 40;
                text.push_str(&format!("2024-05-{day:02}T{hour:02}:00:00Z,{lat},{lon},{count}\n"));
            }
        }
    }
    text
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The CSV's rows as a Parquet file with `compression`.
fn density_parquet(csv: &str, compression: Compression) -> Vec<u8> {
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    let text = |i: usize| Arc::new(StringArray::from(rows.iter().map(|r| r[i]).collect::<Vec<_>>())) as ArrayRef;
    let float = |i: usize| {
        Arc::new(Float64Array::from(rows.iter().map(|r| r[i].parse::<f64>().unwrap()).collect::<Vec<_>>())) as ArrayRef
    };
    let count = Arc::new(Int64Array::from(rows.iter().map(|r| r[3].parse::<i64>().unwrap()).collect::<Vec<_>>()));
    let columns: Vec<(&str, ArrayRef)> = vec![("ts", text(0)), ("lat", float(1)), ("lon", float(2)), ("count", count)];
    let schema = Arc::new(Schema::new(
        columns.iter().map(|(name, a)| Field::new(*name, a.data_type().clone(), true)).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect()).unwrap();
    let properties = WriterProperties::builder().set_compression(compression).build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(properties)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

/// A running server and an HTTP client for uploads.
struct Uploads {
    server: crate::api::Server,
    agent: ureq::Agent,
}

impl Uploads {
    fn post(&self, path: &str, token: Option<&str>, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut request = self.agent.post(format!("{}{path}", self.server.base));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let mut response = request.send(body).expect("the server answers");
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let body = response.body_mut().read_to_vec().expect("a body");
        Reply { status: response.status().as_u16(), content_type, headers: Vec::new(), body }
    }
}

fn query(store: &Path, sql: &str) -> String {
    let out = stroom(&["query", "--store", &store.to_string_lossy(), "--format", "csv", sql]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn version(store: &Path, table: &str) -> Option<u64> {
    let out = stroom(&["tables", "--store", &store.to_string_lossy()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().find(|l| l.starts_with(&format!("{table}: version ")))?;
    line.split_whitespace().nth(2)?.trim_end_matches(',').parse().ok()
}

const ALL_DENSITY: &str = "SELECT cell, ts, count FROM density ORDER BY cell, ts";

#[test]
fn uploads_ingest_like_the_command_line_and_refuse_bad_files_naming_line_column_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let routes = repo_root().join("data/routes");
    // The server serves an existing store: one arrivals figure seeds it.
    let seed = d.join("seed.csv");
    std::fs::write(&seed, "date,station,count\n2024-04-30,dover,12\n").unwrap();
    let (http_store, cli_store) = (d.join("http-store"), d.join("cli-store"));
    for store in [&http_store, &cli_store] {
        let out = stroom(&["ingest", "arrivals", &seed.to_string_lossy(), "--store", &store.to_string_lossy()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let keys = d.join("keys.toml");
    let ingest = create_key(&keys, "ingest", None);
    let viewer = create_key(&keys, "viewer", None);
    let audit = d.join("audit.jsonl");
    let server = crate::api::Server::start_with(
        &http_store,
        &routes,
        &keys,
        &audit,
        &["--upload-limit-mib", "2", "--upload-dir", &d.to_string_lossy()],
    );
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let http = Uploads { server, agent };
    let csv_type = [("Content-Type", "text/csv")];

    // Three deliveries: plain CSV gzip-encoded by header, the next days as
    // a .csv.gz body (by content), the next as Parquet with gzip pages.
    let (first, second, third) = (density_csv(1, 3), density_csv(4, 2), density_csv(6, 2));
    let files = [
        ("week-1.csv", first.as_bytes().to_vec()),
        ("week-2.csv.gz", gzip(second.as_bytes())),
        ("week-3.parquet", density_parquet(&third, Compression::GZIP(GzipLevel::default()))),
    ];
    for (name, bytes) in &files {
        std::fs::write(d.join(name), bytes).unwrap();
    }
    let reply = http.post(
        "/v1/ingest/density?name=week-1.csv",
        Some(&ingest),
        &[("Content-Type", "text/csv"), ("Content-Encoding", "gzip")],
        &gzip(first.as_bytes()),
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["table"], "density");
    assert_eq!(body["file"], "week-1.csv");
    assert_eq!(body["status"], "ingested");
    assert_eq!(body["sha256"], sha256(first.as_bytes()));
    assert_eq!(body["rows_read"], 3 * 24 * 4);
    assert_eq!(body["version_before"], Value::Null);
    let suppressed = body["suppressed"].as_u64().unwrap();
    assert!(suppressed > 0 && body["rows_written"].as_u64().unwrap() > 0, "{body}");
    assert_eq!(
        body["cell_hours"].as_u64().unwrap(),
        body["rows_written"].as_u64().unwrap() + suppressed,
        "every (cell, hour) is written or suppressed"
    );
    let reply = http.post("/v1/ingest/density?name=week-2.csv.gz", Some(&ingest), &[], &files[1].1);
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(reply.json()["file"], "week-2.csv.gz");
    let reply = http.post(
        "/v1/ingest/density?name=week-3",
        Some(&ingest),
        &[("Content-Type", "application/vnd.apache.parquet")],
        &files[2].1,
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(reply.json()["file"], "week-3.parquet");
    assert_eq!(reply.json()["rows_read"], 2 * 24 * 4);

    // The command line's ingest of the same three files gives the same rows.
    let paths: Vec<String> = files.iter().map(|(name, _)| d.join(name).to_string_lossy().into_owned()).collect();
    for path in &paths {
        let out = stroom(&["ingest", "density", path, "--store", &cli_store.to_string_lossy()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let over_http = query(&http_store, ALL_DENSITY);
    assert!(over_http.lines().count() > 100, "{over_http}");
    assert_eq!(over_http, query(&cli_store, ALL_DENSITY));
    let daily = "SELECT day, cell, devices FROM density_daily ORDER BY day, cell";
    assert_eq!(query(&http_store, daily), query(&cli_store, daily));

    // The same bytes again: 200, nothing written.
    let before = version(&http_store, "density");
    let reply = http.post("/v1/ingest/density", Some(&ingest), &csv_type, first.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["status"], "already_ingested");
    assert_eq!(reply.json()["rows_written"], 0);
    assert_eq!(version(&http_store, "density"), before);

    // The first day again under another name: its cell-hours are stored,
    // so it is refused rather than counted twice.
    let detail = http
        .post("/v1/ingest/density?name=day-1-again", Some(&ingest), &csv_type, density_csv(1, 1).as_bytes())
        .problem(422);
    assert!(detail.contains("stored already") && detail.contains("at 2024-05-01T"), "{detail}");
    assert_eq!(version(&http_store, "density"), before);

    // A bad file: 422 naming the delivery, the line, the column and the
    // value, never the server's folder; the tables are unchanged.
    let bad = format!("{}2024-05-09T01:00:00Z,50.95,1.85,twelve\n", density_csv(9, 1));
    let detail =
        http.post("/v1/ingest/density?name=bad-delivery.csv", Some(&ingest), &csv_type, bad.as_bytes()).problem(422);
    for expected in ["bad-delivery.csv", "line 98", "column 'count'", "value 'twelve'"] {
        assert!(detail.contains(expected), "{expected}: {detail}");
    }
    assert!(!detail.contains("stroom-upload-") && !detail.contains(&*d.to_string_lossy()), "{detail}");
    // A 5 MB value is quoted in part only (and over the limit of 2 MiB).
    let huge = format!("ts,lat,lon,count\n2024-05-09T01:00:00Z,50.95,1.85,{}\n", "9".repeat(1 << 20));
    let detail = http.post("/v1/ingest/density", Some(&ingest), &csv_type, huge.as_bytes()).problem(422);
    assert!(detail.len() < 400 && detail.contains("bytes in all"), "{detail}");
    let semicolons = "ts;lat;lon;count\n2024-05-09T01:00:00Z;50,95;1,85;30\n";
    let detail = http.post("/v1/ingest/density", Some(&ingest), &csv_type, semicolons.as_bytes()).problem(422);
    assert!(detail.contains("line 2") && detail.contains("decimal comma"), "{detail}");
    let broken_gzip = &gzip(bad.as_bytes())[..200];
    let detail = http.post("/v1/ingest/density", Some(&ingest), &[], broken_gzip).problem(422);
    assert!(detail.contains("upload.csv.gz"), "{detail}");
    assert_eq!(version(&http_store, "density"), before);
    assert_eq!(query(&http_store, ALL_DENSITY), over_http);

    // Limits, media types and roles.
    let big = density_csv(1, 28).repeat(25);
    assert!(big.len() > 2 << 20);
    http.post("/v1/ingest/density", Some(&ingest), &csv_type, big.as_bytes()).problem(413);
    // Compressed, the same body is small on the wire but not on disk.
    http.post("/v1/ingest/density", Some(&ingest), &[("Content-Encoding", "gzip")], &gzip(big.as_bytes())).problem(413);
    http.post("/v1/ingest/density", Some(&ingest), &[("Content-Type", "application/json")], b"{}").problem(415);
    http.post("/v1/ingest/density", Some(&ingest), &[("Content-Encoding", "compress")], b"x").problem(415);
    http.post("/v1/ingest/density?name=../x", Some(&ingest), &csv_type, first.as_bytes()).problem(400);
    http.post("/v1/ingest/density", Some(&viewer), &csv_type, first.as_bytes()).problem(403);
    http.post("/v1/ingest/density", None, &csv_type, first.as_bytes()).problem(401);
    assert_eq!(version(&http_store, "density"), before);
    assert!(
        std::fs::read_dir(d).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().starts_with("stroom-upload-")),
        "every upload's folder is removed"
    );

    // Arrivals: a delivery, then a revision of one day.
    let arrivals = "date,station,count\n2024-05-01,dover,40\n2024-05-02,dover,0\n2024-05-03,dover,61\n";
    let reply = http.post("/v1/ingest/arrivals?name=dover-may", Some(&ingest), &csv_type, arrivals.as_bytes());
    assert_eq!(reply.status, 201, "{}", reply.text());
    let body = reply.json();
    assert_eq!(
        (body["table"].as_str(), body["rows_written"].as_u64(), body["new_rows"].as_u64()),
        (Some("arrivals"), Some(3), Some(3))
    );
    let revised = "date,count\n2024-05-03,64\n";
    let reply =
        http.post("/v1/ingest/arrivals?station=dover&name=dover-fix.csv", Some(&ingest), &csv_type, revised.as_bytes());
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!((reply.json()["revised_rows"].as_u64(), reply.json()["new_rows"].as_u64()), (Some(1), Some(0)));
    let detail = http
        .post("/v1/ingest/arrivals?name=late", Some(&ingest), &csv_type, b"date,station,count\n2024-05-04,dover,-2\n")
        .problem(422);
    assert!(detail.contains("late.csv, line 2") && detail.contains("value '-2'"), "{detail}");
    http.post("/v1/ingest/arrivals?empty=sometimes", Some(&ingest), &csv_type, arrivals.as_bytes()).problem(400);
    assert_eq!(
        query(&http_store, "SELECT date, count FROM arrivals WHERE station = 'dover' ORDER BY date"),
        "date,count\n2024-04-30,12\n2024-05-01,40\n2024-05-02,0\n2024-05-03,64\n"
    );

    // Concurrent uploads of different deliveries: all land, none is lost.
    let deliveries: Vec<String> = (0..4).map(|i| density_csv(12 + 2 * i, 2)).collect();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = deliveries
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let (http, ingest) = (&http, &ingest);
                scope.spawn(move || {
                    http.post(&format!("/v1/ingest/density?name=part-{i}"), Some(ingest), &[], body.as_bytes()).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses, [201; 4]);
    assert_eq!(version(&http_store, "density"), before.map(|v| v + 4));
    let hours = query(&http_store, "SELECT COUNT(DISTINCT ts) AS hours FROM density WHERE day >= DATE '2024-05-12'");
    assert_eq!(hours, "hours\n192\n", "8 days of 24 hours from four concurrent uploads");

    // A supplementary delivery of day 12 (another provider's devices) adds
    // to the stored cell-hours when asked to, and only then.
    let supplement = density_csv(12, 1).replace(",50.72,1.61,", ",50.7201,1.6101,");
    let sum = "SELECT SUM(count) AS devices FROM density WHERE day = DATE '2024-05-12'";
    let day_12 = query(&http_store, sum);
    http.post("/v1/ingest/density?name=provider-b", Some(&ingest), &csv_type, supplement.as_bytes()).problem(422);
    let reply = http.post(
        "/v1/ingest/density?name=provider-b&add_to_stored=true",
        Some(&ingest),
        &csv_type,
        supplement.as_bytes(),
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    let added = reply.json()["rows_written"].as_u64().unwrap();
    assert!(added > 0 && query(&http_store, sum) != day_12, "{day_12}");

    // A corrected delivery of one hour replaces every stored cell-hour of
    // it (the supplementary devices too), and says how many.
    let hour_5 = "FROM density WHERE ts = TIMESTAMP '2024-05-12T05:00:00Z'";
    let stored_rows = query(&http_store, &format!("SELECT COUNT(*) AS n {hour_5}"));
    let correction = "ts,lat,lon,count\n2024-05-12T05:10:00Z,50.95,1.85,31\n2024-05-12T05:20:00Z,51.03,2.37,44\n";
    let both = "/v1/ingest/density?name=fix&add_to_stored=true&replace=true";
    http.post(both, Some(&ingest), &csv_type, correction.as_bytes()).problem(400);
    let reply = http.post("/v1/ingest/density?name=fix&replace=true", Some(&ingest), &csv_type, correction.as_bytes());
    assert_eq!(reply.status, 201, "{}", reply.text());
    let replaced = reply.json()["replaced_cell_hours"].as_u64().unwrap();
    assert_eq!(format!("n\n{replaced}\n"), stored_rows);
    assert_eq!(
        query(&http_store, &format!("SELECT SUM(count) AS devices, COUNT(*) AS n {hour_5}")),
        "devices,n\n75,2\n"
    );

    // The audit log has every upload with its hash, rows and suppressed count.
    assert!(http.server.stop());
    let lines: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every audit line is JSON"))
        .collect();
    let uploads: Vec<&Value> =
        lines.iter().filter(|l| l["path"].as_str().unwrap().starts_with("/v1/ingest/")).collect();
    assert_eq!(uploads.len(), 3 + 1 + 1 + 4 + 7 + 4 + 4 + 2 + 2, "{uploads:#?}");
    let first_line = uploads[0];
    assert_eq!(first_line["status"], 201);
    assert_eq!(first_line["role"], "ingest");
    assert_eq!(first_line["upload"]["sha256"], sha256(first.as_bytes()));
    assert_eq!(first_line["upload"]["outcome"], "ingested");
    assert_eq!(first_line["upload"]["suppressed"], suppressed);
    assert_eq!(first_line["upload"]["rows_read"], 3 * 24 * 4);
    let refused = uploads.iter().find(|l| l["query"] == "name=bad-delivery.csv").unwrap();
    assert_eq!(refused["status"], 422);
    assert_eq!(refused["upload"]["outcome"], "refused");
    assert_eq!(refused["upload"]["sha256"], sha256(bad.as_bytes()));
    assert!(uploads.iter().filter(|l| l["status"] == 200).all(|l| l["upload"]["outcome"] == "already_ingested"));
}

/// The upload folders (`stroom-upload-*`) under `dir`.
fn upload_folders(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("stroom-upload-"))
        .collect()
}

#[test]
fn a_server_killed_during_an_upload_leaves_the_tables_and_its_folder_goes_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let routes = repo_root().join("data/routes");
    let store = d.join("store");
    let day = d.join("day-1.csv");
    std::fs::write(&day, density_csv(1, 1)).unwrap();
    let out = stroom(&["ingest", "density", "--store", &store.to_string_lossy(), &day.to_string_lossy()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tables =
        || String::from_utf8_lossy(&stroom(&["tables", "--store", &store.to_string_lossy()]).stdout).into_owned();
    let before = tables();
    let keys = d.join("keys.toml");
    let ingest = create_key(&keys, "ingest", None);
    let (audit, uploads) = (d.join("audit.jsonl"), d.join("uploads"));
    std::fs::create_dir_all(&uploads).unwrap();
    let upload_dir = uploads.to_string_lossy().into_owned();
    let server = crate::api::Server::start_with(&store, &routes, &keys, &audit, &["--upload-dir", &upload_dir]);
    // Half of a 4 MiB body is sent; the server is killed while it reads.
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut connection = std::net::TcpStream::connect(&address).unwrap();
    let body = format!("ts,lat,lon,count\n{}", "2024-05-02T00:00:00Z,50.95,1.85,1\n".repeat(125_000));
    assert!(body.len() > 4 << 20);
    write!(
        connection,
        "POST /v1/ingest/density?name=late.csv HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {ingest}\r\n\
         Content-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    connection.write_all(&body.as_bytes()[..2 << 20]).unwrap();
    connection.flush().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while upload_folders(&uploads).is_empty() {
        assert!(std::time::Instant::now() < deadline, "no upload folder appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    drop(connection);
    assert_eq!(upload_folders(&uploads).len(), 1, "the killed upload's folder is left");
    assert_eq!(tables(), before, "nothing of the upload reached the store");
    // A server started within the upload timeout leaves the folder (it may
    // be another server's upload); once it is older, the next start removes it.
    let server = crate::api::Server::start_with(&store, &routes, &keys, &audit, &["--upload-dir", &upload_dir]);
    assert!(server.stop());
    assert_eq!(upload_folders(&uploads).len(), 1);
    std::thread::sleep(Duration::from_millis(1500));
    let server = crate::api::Server::start_with(
        &store,
        &routes,
        &keys,
        &audit,
        &["--upload-dir", &upload_dir, "--upload-timeout-s", "1"],
    );
    // (It goes while the server starts, as it begins to serve.)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !upload_folders(&uploads).is_empty() {
        assert!(std::time::Instant::now() < deadline, "{:?} is left", upload_folders(&uploads));
        std::thread::sleep(Duration::from_millis(20));
    }
    // The same delivery then lands whole.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let reply = agent
        .post(format!("{}/v1/ingest/density?name=late.csv", server.base))
        .header("Authorization", format!("Bearer {ingest}"))
        .header("Content-Type", "text/csv")
        .send(body.as_bytes())
        .unwrap();
    assert_eq!(reply.status().as_u16(), 201);
    assert!(server.stop());
    for (number, line) in std::fs::read_to_string(&audit).unwrap().lines().enumerate() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("audit line {}: {e}: {line}", number + 1));
    }
}
