//! Crash safety shown by killing real processes: `stroom ingest density`
//! killed with SIGKILL at seeded random moments (while it parses, spills,
//! writes files, commits density, commits the rollup), and an ingest into a
//! store on a full disk. After each, the tables load with Python `deltalake`,
//! queries work, the same ingest run again completes, the sums equal those
//! of one clean ingest, and `stroom vacuum` removes what the killed process
//! left without touching any version.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use stroom_core::{Cell, Resolution};

use crate::api::copy_tree;
use crate::support::{python, stroom, stroom_binary};

/// `ts,cell,count` rows of the cells within `ring` of one cell at
/// `resolution` (finer cells are summed into their resolution-7 parent),
/// over `hours` hours from `first`; counts from 0 to 29, so about half are
/// below k.
fn delivery(path: &Path, first: i64, hours: i64, resolution: u8, ring: u32) {
    let base = Cell::from_lat_lng(50.95, 1.85, Resolution::new(resolution.into()).unwrap()).unwrap();
    let cells: Vec<u64> = base.h3o().grid_disk::<Vec<_>>(ring).into_iter().map(u64::from).collect();
    let mut text = String::from("ts,cell,count\n");
    for h in 0..hours {
        let at = chrono::DateTime::from_timestamp(first + h * 3600, 0).unwrap().format("%Y-%m-%dT%H:%M:%SZ");
        for (i, cell) in cells.iter().enumerate() {
            let count = (i as i64 * 7 + h * 13) % 30;
            text += &format!("{at},{cell:x},{count}\n");
        }
    }
    std::fs::write(path, text).unwrap();
}

/// Rows, devices and the rollup's devices of a store, by `stroom query`.
fn sums(store: &str) -> String {
    let out = stroom(&[
        "query",
        "--store",
        store,
        "--format",
        "csv",
        "SELECT (SELECT COUNT(*) FROM density) AS rows, (SELECT SUM(CAST(count AS BIGINT)) FROM density) AS devices, \
         (SELECT SUM(devices) FROM density_daily) AS daily",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Rows and devices of both density tables by Python `deltalake`, and the
/// first version of density read by time travel.
fn read_by_python(store: &Path) -> String {
    let script = r#"
import os, sys
from deltalake import DeltaTable
out = []
for name in ("density", "density_daily"):
    path = os.path.join(sys.argv[1], name)
    if not os.path.isdir(path):
        out.append(f"{name}:none")
        continue
    t = DeltaTable(path).to_pyarrow_table()
    if name == "density":
        out.append(f"{name}:{t.num_rows}:{sum(t.column('count').to_pylist())}")
    else:
        out.append(f"{name}:{sum(t.column('devices').to_pylist())}")
first = DeltaTable(os.path.join(sys.argv[1], "density"), version=1).to_pyarrow_table()
out.append(f"v1:{first.num_rows}")
print(" ".join(out), flush=True)
os._exit(0)
"#;
    python(script, &[&store.to_string_lossy()]).trim().to_owned()
}

fn ingest(store: &str, files: &[&Path]) -> Command {
    let mut command = Command::new(stroom_binary());
    command.args(["ingest", "density", "--store", store, "--spill-entries", "60000"]);
    command.args(files);
    command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    command
}

#[test]
fn an_ingest_killed_at_random_moments_leaves_readable_tables_and_the_rerun_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let may = 1_714_521_600; // 2024-05-01T00:00:00Z
    let (day0, rest) = (d.join("day-0.csv"), d.join("days-1-3.csv"));
    delivery(&day0, may, 24, 9, 12);
    // 10 981 cells × 96 hours: far more distinct keys than --spill-entries.
    delivery(&rest, may + 86_400, 96, 7, 60);
    // A template store holding day 0; the reference adds days 1–3 cleanly.
    let template = d.join("template");
    let template_arg = template.to_str().unwrap();
    assert!(ingest(template_arg, &[&day0]).status().unwrap().success());
    let reference = d.join("reference");
    copy_tree(&template, &reference);
    let started = Instant::now();
    assert!(ingest(reference.to_str().unwrap(), &[&rest]).status().unwrap().success());
    let clean = started.elapsed();
    let expected = sums(reference.to_str().unwrap());
    let expected_python = read_by_python(&reference);

    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let (mut killed_running, mut orphans, mut committed_before_kill) = (0, 0u64, 0);
    for round in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = clean.mul_f64(1.1 * (seed % 1000) as f64 / 1000.0);
        let store = d.join(format!("store-{round}"));
        copy_tree(&template, &store);
        let store_arg = store.to_str().unwrap();
        let mut child = ingest(store_arg, &[&rest]).spawn().unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed_running += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Right after the kill: both tables load, and every query works.
        let after_kill = read_by_python(&store);
        assert!(
            after_kill.contains("density:")
                && after_kill.ends_with(&format!("v1:{}", expected_python_v1(&expected_python)))
        );
        // (The rollup is queried only once it is complete for density, which
        // a kill between the two commits leaves it not.)
        let query = ["query", "--store", store_arg, "--format", "csv", "SELECT COUNT(*), SUM(count) FROM density"];
        let partial = stroom(&query);
        assert!(partial.status.success(), "{}", String::from_utf8_lossy(&partial.stderr));
        if String::from_utf8_lossy(&partial.stdout)
            == String::from_utf8_lossy(&stroom(&query_of(&reference, &query)).stdout)
        {
            committed_before_kill += 1;
        }
        // The same ingest again completes, and counts everything once.
        let rerun = ingest(store_arg, &[&rest]).status().unwrap();
        assert!(rerun.success(), "round {round}: the rerun failed after a kill at {delay:?}");
        assert_eq!(sums(store_arg), expected, "round {round}: killed at {delay:?}");
        assert_eq!(read_by_python(&store), expected_python, "round {round}");
        // What the killed process left is removed, and nothing else.
        let out = stroom(&["vacuum", "--store", store_arg, "--older-than", "0s"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        orphans += text
            .lines()
            .filter_map(|l| l.split("removed ").nth(1)?.split(' ').next()?.parse::<u64>().ok())
            .sum::<u64>();
        assert_eq!(sums(store_arg), expected, "round {round}: after vacuum");
        assert_eq!(read_by_python(&store), expected_python, "round {round}: after vacuum, with time travel");
        let again = stroom(&["vacuum", "--store", store_arg, "--older-than", "0s"]);
        assert!(String::from_utf8_lossy(&again.stdout).lines().all(|l| l.contains("removed 0 files")));
    }
    eprintln!(
        "20 kills: {killed_running} while the ingest ran (clean run {clean:?}), {committed_before_kill} after its \
         commit, {orphans} uncommitted files removed by vacuum"
    );
    assert!(killed_running >= 12, "only {killed_running} of 20 kills hit a running ingest");
}

/// Every file under a table outside its log.
fn data_files(table: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![table.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with("_delta_log") {
                    folders.push(path);
                }
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn vacuum_removes_only_files_no_commit_took_and_spares_young_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = d.join("store");
    let store_arg = store.to_str().unwrap();
    let may = 1_714_521_600;
    let (first, second, fix) = (d.join("first.csv"), d.join("second.csv"), d.join("fix.csv"));
    delivery(&first, may, 24, 7, 4);
    delivery(&second, may + 86_400, 24, 7, 4);
    delivery(&fix, may + 3600, 2, 7, 2);
    for file in [&first, &second] {
        assert!(ingest(store_arg, &[file]).status().unwrap().success());
    }
    // A correction rewrites day 1's file: the old one stays for time travel.
    let out = stroom(&["ingest", "density", "--store", store_arg, "--replace", &fix.to_string_lossy()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let density = store.join("density");
    let committed = data_files(&density);
    // A file no commit took, as a killed writer leaves one.
    let orphan = committed[0].with_file_name("part-00000-left-by-a-killed-writer.zstd.parquet");
    std::fs::copy(&committed[0], &orphan).unwrap();
    let vacuum = |args: &[&str]| {
        let mut all = vec!["vacuum", "--store", store_arg];
        all.extend(args);
        let out = stroom(&all);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Too young for the default guard, and for an hour's.
    let text = vacuum(&[]);
    assert!(text.contains("density: removed 0 files") && text.contains("left 1 such files younger than 24h"), "{text}");
    assert!(vacuum(&["--older-than", "1h"]).contains("left 1 such files"));
    let text = vacuum(&["--older-than", "0s", "--dry-run"]);
    assert!(text.contains("density: would remove 1 files"), "{text}");
    assert!(orphan.exists());
    let text = vacuum(&["--older-than", "0s"]);
    assert!(text.contains("density: removed 1 files"), "{text}");
    assert!(!orphan.exists());
    assert_eq!(data_files(&density), committed, "every committed file stays, the replaced one too");
    // Every version still reads: the one before the correction too.
    let script = r#"
import os, sys
from deltalake import DeltaTable
print(" ".join(str(DeltaTable(sys.argv[1], version=v).to_pyarrow_table().num_rows) for v in (1, 2, 3)), flush=True)
os._exit(0)
"#;
    let rows: Vec<u64> =
        python(script, &[&density.to_string_lossy()]).split_whitespace().map(|n| n.parse().unwrap()).collect();
    assert!(rows[0] > 0 && rows[1] > rows[0] && rows[2] != rows[1], "{rows:?}");
}

/// `query` with its store replaced by `store`.
fn query_of<'a>(store: &'a Path, query: &[&'a str; 6]) -> [&'a str; 6] {
    let mut other = *query;
    other[2] = store.to_str().unwrap();
    other
}

/// The `v1:ROWS` part of [`read_by_python`]'s answer.
fn expected_python_v1(answer: &str) -> &str {
    answer.rsplit("v1:").next().unwrap()
}

#[test]
fn an_ingest_onto_a_full_disk_says_so_and_leaves_the_tables_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("small-disk");
    std::fs::create_dir_all(&mount).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"]).arg(&mount).output();
    if !mounted.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!(
            "skipped: a small tmpfs cannot be mounted here ({})",
            mounted.map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).unwrap_or_else(|e| e.to_string())
        );
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&mount);
    let store = mount.join("store");
    let store_arg = store.to_str().unwrap();
    let (small, large) = (dir.path().join("small.csv"), dir.path().join("large.csv"));
    delivery(&small, 1_714_521_600, 24, 7, 2);
    delivery(&large, 1_714_521_600 + 86_400, 24 * 30, 7, 8);
    assert!(ingest(store_arg, &[&small]).status().unwrap().success());
    // The rest of the disk is filled by other data, but for 64 KiB.
    let filler = mount.join("other-data");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![7u8; 16 << 10];
        while file.write_all(&block).and_then(|()| file.sync_data()).is_ok() {}
        let full = std::fs::metadata(&filler).unwrap().len();
        file.set_len(full.saturating_sub(64 << 10)).unwrap();
    }
    let before = sums(store_arg);
    let tables = |store: &str| String::from_utf8_lossy(&stroom(&["tables", "--store", store]).stdout).into_owned();
    let listed = tables(store_arg);
    let out = stroom(&["ingest", "density", "--store", store_arg, &large.to_string_lossy()]);
    assert!(!out.status.success(), "the ingest fit in 64 KiB");
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("No space left on device"), "{message}");
    assert_eq!(sums(store_arg), before);
    assert_eq!(tables(store_arg), listed);
    // Once there is room again, what it wrote goes with a vacuum and the
    // same delivery lands.
    std::fs::remove_file(&filler).unwrap();
    let vacuum = stroom(&["vacuum", "--store", store_arg, "--older-than", "0s"]);
    assert!(vacuum.status.success(), "{}", String::from_utf8_lossy(&vacuum.stderr));
    let out = stroom(&["ingest", "density", "--store", store_arg, &large.to_string_lossy()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
