//! Density ingest throughput: provider Parquet files in the lat/lon layout
//! (10 files of 1 million rows, fixed seed) into a fresh Delta table at
//! resolution 7 with k = 15. Rows per second is the figure reported.
//!
//! `STROOM_BENCH_ROWS` overrides the row count (for a quick run).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;
use stroom_core::{HOUR_MICROS, Resolution, parse_timestamp_micros};
use stroom_store::{DensityIngest, Store};

const FILES: usize = 10;

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Writes `rows` provider rows over `FILES` files: points scattered around
/// ten real cities on the routes, hourly over consecutive days.
fn write_provider_files(dir: &Path, rows: usize, seed: u64) -> Vec<PathBuf> {
    let cities = [
        (40.64, 22.94),
        (41.99, 21.43),
        (44.81, 20.46),
        (47.50, 19.04),
        (48.21, 16.37),
        (50.85, 4.35),
        (50.95, 1.86),
        (52.23, 21.01),
        (52.52, 13.40),
        (37.50, 15.08),
    ];
    let schema = Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("lat", DataType::Float64, false),
        Field::new("lon", DataType::Float64, false),
        Field::new("count", DataType::Int64, false),
    ]));
    let start = parse_timestamp_micros("2025-01-01T00:00:00Z").expect("a valid timestamp");
    let per_file = rows / FILES;
    let per_hour = 20_000;
    let mut rng = Rng(seed);
    let mut paths = Vec::new();
    for file in 0..FILES {
        let path = dir.join(format!("provider-{file:02}.parquet"));
        let mut writer =
            ArrowWriter::try_new(std::fs::File::create(&path).expect("create"), schema.clone(), None).expect("writer");
        let mut written = 0;
        while written < per_file {
            let n = (per_file - written).min(per_hour);
            let hour = (file * per_file + written) / per_hour;
            let ts = vec![start + hour as i64 * HOUR_MICROS; n];
            let mut lat = Vec::with_capacity(n);
            let mut lon = Vec::with_capacity(n);
            let mut count = Vec::with_capacity(n);
            for _ in 0..n {
                let (clat, clon) = cities[(rng.next() % cities.len() as u64) as usize];
                let spread = 0.4 * rng.unit().powi(2);
                let angle = rng.unit() * std::f64::consts::TAU;
                lat.push(clat + spread * angle.sin());
                lon.push(clon + spread * angle.cos());
                count.push((rng.next() % 40) as i64);
            }
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")) as ArrayRef,
                    Arc::new(Float64Array::from(lat)),
                    Arc::new(Float64Array::from(lon)),
                    Arc::new(Int64Array::from(count)),
                ],
            )
            .expect("batch");
            writer.write(&batch).expect("write");
            written += n;
        }
        writer.close().expect("close");
        paths.push(path);
    }
    paths
}

fn ingest_benchmark(c: &mut Criterion) {
    let rows: usize = std::env::var("STROOM_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let inputs = tempfile::tempdir().expect("temp dir");
    let files = write_provider_files(inputs.path(), rows, 42);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let ingest = DensityIngest::new(Resolution::new(7).expect("7 is a resolution"), 15).expect("k = 15");
    let mut group = c.benchmark_group("ingest");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows as u64));
    group.bench_function(format!("res7/{rows}_rows"), |b| {
        b.iter_batched(
            || tempfile::tempdir().expect("temp dir"),
            |store_dir| {
                let store = Store::open(&store_dir.path().to_string_lossy()).expect("store");
                let report = runtime.block_on(ingest.run(&store, &files, &|_| {})).expect("ingest");
                assert_eq!(report.rows_read, rows as u64);
                store_dir
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, ingest_benchmark);
criterion_main!(benches);
