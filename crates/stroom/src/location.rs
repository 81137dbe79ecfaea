//! The options that say where a store is and where queries run, shared by
//! every command.

use anyhow::{Context, Result, bail};
use clap::Args;
use stroom_query::Engine;
use stroom_store::{StorageOptions, Store};

/// A store location and the options that reach it.
#[derive(Debug, Clone, Args)]
pub(crate) struct StoreArgs {
    /// Store location: a local folder, file:///PATH or s3://BUCKET/PREFIX
    /// (credentials, region and endpoint from the AWS_* variables or
    /// --storage-option).
    #[arg(long = "store", value_name = "LOCATION")]
    pub(crate) location: String,
    /// An object-store option, KEY=VALUE (repeatable), e.g.
    /// aws_endpoint_url=http://127.0.0.1:9000 or aws_region=eu-west-1;
    /// overrides the AWS_* variables.
    #[arg(long = "storage-option", value_name = "KEY=VALUE", value_parser = parse_option)]
    pub(crate) storage_options: Vec<(String, String)>,
}

impl StoreArgs {
    pub(crate) fn options(&self) -> StorageOptions {
        self.storage_options.iter().cloned().collect()
    }

    /// The existing store, for reading: a location that holds no store,
    /// or cannot be reached, is an error naming it.
    pub(crate) async fn open(&self) -> Result<Store> {
        Ok(Store::open_existing(&self.location, self.options()).await?)
    }

    /// The store for writing, created if missing.
    pub(crate) fn create(&self) -> Result<Store> {
        Store::create(&self.location, self.options()).with_context(|| format!("opening store {}", self.location))
    }
}

/// Where queries run.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct EngineArgs {
    /// Run the queries on a Ballista cluster: its scheduler, df://HOST:PORT
    /// (`stroom scheduler` and `stroom executor` start one). In this process
    /// when omitted.
    #[arg(long, value_name = "df://HOST:PORT")]
    pub(crate) cluster: Option<String>,
}

impl EngineArgs {
    pub(crate) fn engine(&self) -> Engine {
        self.cluster.clone().map_or(Engine::Local, Engine::Cluster)
    }
}

/// Parses one `KEY=VALUE` storage option.
pub(crate) fn parse_option(text: &str) -> Result<(String, String)> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_ascii_lowercase(), value.to_owned())),
        _ => bail!("expected KEY=VALUE, got '{text}'"),
    }
}
