//! The binary as a new user meets it: output piped into a reader that stops
//! early, errors that name each cause once, `--as-of` with a version or a
//! time, and read-only commands on a location that holds no store.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};

use crate::query::small_store;
use crate::support::{stroom, stroom_binary};

/// Runs the binary with its output piped into a reader that takes the first
/// line and closes the pipe, as `| head -1` does; returns that line and how
/// the command ended.
fn first_line_then_close(args: &[&str]) -> (String, Output) {
    let mut child = Command::new(stroom_binary())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the stroom binary runs");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().expect("a piped stdout")).read_line(&mut first).unwrap();
    let output = child.wait_with_output().unwrap();
    (first, output)
}

/// Checks that a command whose reader closed the pipe ended with success and
/// said nothing.
fn check_quiet_end(args: &[&str], first_line: &str) {
    let (first, output) = first_line_then_close(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(first.starts_with(first_line), "{args:?}: first line '{first}'");
    assert!(output.status.success(), "{args:?}: {:?}, stderr: {stderr}", output.status);
    assert_eq!(stderr, "", "{args:?}");
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn routes_piped_into_a_reader_that_stops_end_quietly() {
    check_quiet_end(&["routes"], "resolution ");
    // One route as GeoJSON is megabytes, far more than a pipe holds.
    check_quiet_end(&["routes", "--geojson", "channel"], "{");
}

#[test]
fn query_piped_into_a_reader_that_stops_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    small_store(dir.path());
    let store = dir.path().join("store");
    // A million bytes and more, far more than a pipe holds.
    let sql = "SELECT value FROM generate_series(1, 200000)";
    for format in ["csv", "table"] {
        let first_line = if format == "csv" { "value" } else { "+-" };
        check_quiet_end(&["query", "--store", &store.to_string_lossy(), "--format", format, sql], first_line);
    }
}

#[test]
fn a_missing_input_file_names_its_os_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let missing = dir.path().join("missing.csv");
    for command in [
        vec!["ingest", "arrivals", &*missing.to_string_lossy(), "--store", &*store.to_string_lossy()],
        vec!["ingest", "density", &*missing.to_string_lossy(), "--store", &*store.to_string_lossy()],
    ] {
        let output = stroom(&command);
        let stderr = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{command:?}: {stderr}");
        assert_eq!(stderr.matches("No such file or directory").count(), 1, "{command:?}: {stderr}");
        assert_eq!(stderr, format!("error: {}: No such file or directory (os error 2)\n", missing.display()));
    }
}

#[test]
fn a_sql_typo_names_the_parser_message_once() {
    let dir = tempfile::tempdir().unwrap();
    small_store(dir.path());
    let store = dir.path().join("store");
    let output = stroom(&["query", "--store", &store.to_string_lossy(), "SELEC station FROM arrivals"]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let parser_message = "Expected: an SQL statement, found: SELEC at Line: 1, Column: 1";
    assert_eq!(stderr.matches(parser_message).count(), 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// A time as the user would type it, truncated to the second.
fn rfc3339(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn ingest_arrivals(dir: &Path, store: &str, name: &str, text: &str) {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    let output = stroom(&["ingest", "arrivals", &file.to_string_lossy(), "--store", store]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn as_of_takes_a_version_or_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let store = store.to_string_lossy();
    ingest_arrivals(dir.path(), &store, "a1.csv", "date,station,count\n2024-05-01,dover,12\n2024-05-02,dover,30\n");
    // A whole second strictly between the two commits.
    std::thread::sleep(Duration::from_millis(1100));
    let between = Utc::now().trunc_subsecs(0);
    std::thread::sleep(Duration::from_millis(1100));
    ingest_arrivals(dir.path(), &store, "a2.csv", "date,station,count\n2024-05-02,dover,40\n");
    let after = Utc::now().trunc_subsecs(0) + chrono::Duration::seconds(1);

    let sql = "SELECT count FROM arrivals WHERE station = 'dover' AND date = DATE '2024-05-02'";
    let answer = |as_of: &str| {
        let output = stroom(&["query", "--store", &store, "--format", "csv", "--as-of", as_of, sql]);
        assert!(output.status.success(), "--as-of {as_of}: {}", stderr(&output));
        String::from_utf8(output.stdout).unwrap()
    };
    let (old, new) = ("count\n30\n", "count\n40\n");
    assert_eq!(answer("1"), old);
    assert_eq!(answer("2"), new);
    assert_eq!(answer(&rfc3339(between)), old);
    let in_amsterdam = between.with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap());
    assert_eq!(answer(&in_amsterdam.format("%Y-%m-%dT%H:%M:%S%:z").to_string()), old);
    assert_eq!(answer(&between.format("%Y-%m-%dT%H:%M:%S").to_string()), old);
    assert_eq!(answer(&rfc3339(after)), new);
    assert_eq!(answer(&(after + chrono::Duration::days(1)).format("%Y-%m-%d").to_string()), new);

    // Before the first commit the table did not exist.
    let output = stroom(&["query", "--store", &store, "--as-of", "2001-01-01", sql]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("arrivals"), "{}", stderr(&output));

    for bad in ["yesterday", "2024-04-31", "2024-05-01 25:00", "1.5"] {
        let output = stroom(&["query", "--store", &store, "--as-of", bad, sql]);
        let stderr = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "--as-of {bad}: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "error: invalid value '{bad}' for '--as-of <VERSION|TIME>': expected a table version (such as 3) \
                 or a time: RFC 3339 (such as 2024-05-01T13:00:00Z), or YYYY-MM-DDTHH:MM:SS or YYYY-MM-DD in UTC\n"
            )),
            "--as-of {bad}: {stderr}"
        );
    }
}

#[test]
fn read_only_commands_refuse_a_location_without_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-store-here");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = dir.path().join("out");
    let mut ran = 0;
    for (location, what) in [(&missing, "no store there"), (&empty, "no store there")] {
        let store = location.to_str().unwrap();
        let out = out.to_str().unwrap();
        let commands: [&[&str]; 7] = [
            &["tables", "--store", store],
            &["query", "--store", store, "SELECT 1"],
            &["series", "--store", store, "--route", "channel", "--from", "2024-01-01", "--to", "2024-02-01"],
            &["backtest", "--store", store, "--target", "station:dover", "--out", out],
            &["forecast", "--store", store],
            &["export", "map", "--store", store, "--route", "channel", "--format", "svg", "--out", out],
            &["serve", "--store", store, "--addr", "127.0.0.1:0", "--keys", out],
        ];
        for args in commands {
            let output = stroom(args);
            let message = stderr(&output);
            assert!(!output.status.success(), "{args:?} succeeded");
            assert!(
                message.contains(what) && message.contains("no-store-here") == (location == &missing),
                "{args:?}: {message}"
            );
            assert_eq!(message.lines().count(), 1, "{args:?}: {message}");
            ran += 1;
        }
    }
    assert_eq!(ran, 14);
    assert!(!missing.exists(), "a read-only command created the store folder");
    assert!(!out.exists(), "a refused command wrote its output");
}
