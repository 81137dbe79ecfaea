//! `stroom query`: read-only SQL over a store, for analysts.

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
    /// Store location: a local folder or a URL.
    #[arg(long)]
    pub(crate) store: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
    /// Read every table as of this Delta version (a data vintage).
    #[arg(long, value_name = "VERSION")]
    pub(crate) as_of: Option<u64>,
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
    let store = crate::open_store(&args.store)?;
    let session = QuerySession::open(&store, args.as_of.map(Vintage::Version)).await?;
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
            std::io::stdout().write_all(&bytes)?;
        }
    }
    Ok(())
}
