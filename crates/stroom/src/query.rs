//! `stroom query`: read-only SQL over a store, for analysts.

use crate::location::{EngineArgs, StoreArgs};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::parquet::arrow::ArrowWriter;
use stroom_query::{QuerySession, Vintage};

#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    /// The SQL query. Tables: density (cell, ts, count, day), density_files
    /// (the same without day), arrivals (station, date, count); functions h3_*.
    pub(crate) sql: String,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
    /// Read every table as it was (a data vintage): at this Delta version,
    /// or at this time, RFC 3339 (2024-05-01T13:00:00Z) or, in UTC,
    /// YYYY-MM-DDTHH:MM:SS or YYYY-MM-DD (its midnight).
    #[arg(long, value_name = "VERSION|TIME", value_parser = parse_vintage)]
    pub(crate) as_of: Option<Vintage>,
    /// Output file (required for parquet; stdout otherwise).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Table,
    Csv,
    Json,
    Parquet,
}

pub(crate) async fn run(args: &QueryArgs) -> Result<()> {
    let store = args.store.open().await?;
    let session = QuerySession::open_on(&store, args.as_of, &args.engine.engine()).await?;
    let frame = session.sql(&args.sql).await?;
    let schema = frame.schema().as_arrow().clone();
    let batches = frame.collect().await?;
    let mut bytes = Vec::new();
    match args.format {
        Format::Table => bytes.extend(format!("{}\n", pretty_format_batches(&batches)?).into_bytes()),
        Format::Csv => {
            let mut writer = datafusion::arrow::csv::Writer::new(&mut bytes);
            for batch in &batches {
                writer.write(batch)?;
            }
        }
        Format::Json => {
            let mut writer = datafusion::arrow::json::ArrayWriter::new(&mut bytes);
            for batch in &batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            bytes.push(b'\n');
        }
        Format::Parquet => {
            if args.out.is_none() {
                bail!("--format parquet needs --out FILE");
            }
            let mut writer = ArrowWriter::try_new(&mut bytes, std::sync::Arc::new(schema), None)?;
            for batch in &batches {
                writer.write(batch)?;
            }
            writer.close()?;
        }
    }
    match &args.out {
        Some(path) => std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?,
        None => {
            use std::io::Write;
            crate::output::stdout().write_all(&bytes)?;
        }
    }
    Ok(())
}

/// Parses `--as-of`: a table version, or a time (RFC 3339, or a zone-less
/// date and time or a date, in UTC).
fn parse_vintage(text: &str) -> Result<Vintage, String> {
    if let Ok(version) = text.parse::<u64>() {
        return Ok(Vintage::Version(version));
    }
    let time = match stroom_core::parse_timestamp_micros(text) {
        Ok(micros) => chrono::DateTime::from_timestamp_micros(micros),
        Err(_) => stroom_core::parse_date(text).ok().map(|date| date.and_time(chrono::NaiveTime::MIN).and_utc()),
    };
    time.map(Vintage::AsOf).ok_or_else(|| {
        "expected a table version (such as 3) or a time: RFC 3339 (such as 2024-05-01T13:00:00Z), \
         or YYYY-MM-DDTHH:MM:SS or YYYY-MM-DD in UTC"
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Option<&str>) {
        let expected = expected.map(|e| match e.parse::<u64>() {
            Ok(version) => Vintage::Version(version),
            Err(_) => Vintage::AsOf(chrono::DateTime::parse_from_rfc3339(e).unwrap().with_timezone(&chrono::Utc)),
        });
        assert_eq!(parse_vintage(text).ok(), expected, "{text}");
    }

    #[test]
    fn as_of_takes_a_version_or_a_time() {
        check("0", Some("0"));
        check("12", Some("12"));
        check("2024-05-01T13:00:00Z", Some("2024-05-01T13:00:00Z"));
        check("2024-05-01T15:00:00+02:00", Some("2024-05-01T13:00:00Z"));
        check("2024-05-01T13:00:00", Some("2024-05-01T13:00:00Z"));
        check("2024-05-01", Some("2024-05-01T00:00:00Z"));
        check("2024-04-31", None);
        check("2024-05-01T25:00:00", None);
        check("-1", None);
        check("yesterday", None);
        check("", None);
    }
}
