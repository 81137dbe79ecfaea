//! Where a store lives: a local folder, or an S3 (or S3-compatible) bucket
//! and prefix, and the options that reach it.
//!
//! S3 goes through `object_store`'s own client, the one DataFusion reads
//! with: credentials, region and endpoint come from the standard `AWS_*`
//! variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, …) and from storage options, which
//! take precedence and use the same names in lower case, with or without
//! the `aws_` prefix. That client is registered with deltalake's object
//! store and log store factories for `s3://`, and [`StroomObjectStores`]
//! hands the same stores to every DataFusion session, local or in a cluster
//! process. Delta commits on S3 are conditional puts
//! (`If-None-Match: *`, object_store's `ETagMatch` default): of two writers
//! racing for one table version exactly one wins, and the loser's commit
//! fails instead of overwriting (what stroom then does is up to the ingest:
//! merge again, check again, or drop a rollup). The commit log is
//! deltalake's default log store, the one it uses for every store with an
//! atomic put-if-absent.

use std::collections::BTreeMap;
use std::sync::{Arc, Once};
use std::time::Duration;

use datafusion::common::DataFusionError;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig, default_logstore, logstore_factories,
    object_store_factories,
};
use deltalake::{DeltaResult, Path};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use url::Url;

/// Options of an object store: `KEY=VALUE` pairs such as
/// `aws_endpoint_url=http://127.0.0.1:9000` or `region=eu-west-1`.
pub type StorageOptions = BTreeMap<String, String>;

/// The URL schemes of S3 stores.
const S3_SCHEMES: [&str; 2] = ["s3", "s3a"];

/// Whether a URL is on S3.
pub fn is_s3(url: &Url) -> bool {
    S3_SCHEMES.contains(&url.scheme())
}

/// Checks storage options for a store URL: every key must be one the
/// store's client knows, so that a typo fails instead of being ignored.
pub fn check_storage_options(url: &Url, options: &StorageOptions) -> Result<(), String> {
    if options.is_empty() {
        return Ok(());
    }
    if !is_s3(url) {
        return Err(format!("storage options apply to s3:// stores only, not to {}", url.scheme()));
    }
    for key in options.keys() {
        key.to_ascii_lowercase()
            .parse::<AmazonS3ConfigKey>()
            .map_err(|_| format!("unknown S3 storage option '{key}'"))?;
    }
    Ok(())
}

/// Teaches deltalake to open `s3://` and `s3a://` tables with stroom's S3
/// client; called by every [`crate::Store`] before it touches a table.
pub(crate) fn register_object_stores() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for scheme in S3_SCHEMES {
            let url = Url::parse(&format!("{scheme}://")).expect("a scheme is a URL");
            object_store_factories().insert(url.clone(), Arc::new(S3Factory));
            logstore_factories().insert(url, Arc::new(S3LogStoreFactory));
        }
    });
}

/// The S3 client of one bucket: the `AWS_*` variables, then `options`.
/// Requests time out and retry briefly, so that an unreachable endpoint
/// fails within seconds with one error instead of retrying for minutes.
pub fn s3_store(url: &Url, options: &StorageOptions) -> Result<AmazonS3, object_store::Error> {
    let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
    for (key, value) in options {
        if let Ok(key) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
            builder = builder.with_config(key, value);
        }
    }
    let client =
        ClientOptions::new().with_connect_timeout(Duration::from_secs(5)).with_timeout(Duration::from_secs(120));
    // `AWS_ALLOW_HTTP` and an `allow_http` option were read above; the
    // client options keep them.
    let client = match builder.get_config_value(&AmazonS3ConfigKey::Client(object_store::ClientConfigKey::AllowHttp)) {
        Some(allow) => client.with_config(object_store::ClientConfigKey::AllowHttp, allow),
        None => client,
    };
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(20),
    };
    builder.with_client_options(client).with_retry(retry).build()
}

/// deltalake's object store for `s3://` tables.
#[derive(Debug)]
struct S3Factory;

impl ObjectStoreFactory for S3Factory {
    fn parse_url_opts(&self, url: &Url, config: &StorageConfig) -> DeltaResult<(ObjectStoreRef, Path)> {
        let options: StorageOptions = config.raw.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let store = s3_store(url, &options)?;
        let path = Path::from_url_path(url.path()).map_err(object_store::Error::from)?;
        Ok((Arc::new(store), path))
    }
}

/// deltalake's default log store (commits by put-if-absent) for `s3://`.
#[derive(Debug)]
struct S3LogStoreFactory;

impl LogStoreFactory for S3LogStoreFactory {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(prefixed_store, root_store, location, options))
    }
}

/// The object stores of a DataFusion session (local or a Ballista
/// executor's): local files and memory as DataFusion has them, and every
/// `s3://` bucket built on first use from the `AWS_*` variables and
/// `options`.
#[derive(Debug)]
pub struct StroomObjectStores {
    inner: DefaultObjectStoreRegistry,
    options: StorageOptions,
}

impl StroomObjectStores {
    /// A registry that reaches S3 with `options`.
    pub fn new(options: StorageOptions) -> Self {
        Self { inner: DefaultObjectStoreRegistry::new(), options }
    }
}

impl ObjectStoreRegistry for StroomObjectStores {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::common::Result<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::common::Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.inner.get_store(url) {
            return Ok(store);
        }
        if !is_s3(url) {
            return Err(DataFusionError::Execution(format!("no object store for {url}")));
        }
        let bucket = Url::parse(&format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()))
            .map_err(|e| DataFusionError::Execution(format!("{url}: {e}")))?;
        let store: Arc<dyn ObjectStore> = Arc::new(s3_store(&bucket, &self.options)?);
        // Two threads may build the same bucket's client at once; either
        // one serves.
        self.inner.register_store(&bucket, Arc::clone(&store));
        Ok(store)
    }
}
