//! Running a session's plans on a Ballista cluster.
//!
//! The client keeps everything that needs deltalake: it opens the Delta
//! snapshots and registers plain Parquet listing tables over their files,
//! exactly as a local session does. Ballista then sends the logical plan to
//! the scheduler, which plans it and hands stages to the executors. Every
//! process of the cluster (`stroom scheduler`, `stroom executor`) registers
//! the same H3 functions ([`crate::h3_functions`], stateless, found by name)
//! and the same object stores ([`stroom_store::StroomObjectStores`]), so a
//! plan means the same thing wherever it runs.
//!
//! [`remote_context`] checks that the scheduler answers, puts back the
//! functions that Ballista's rebuild of the session state leaves out, and
//! turns off Ballista's adaptive planner, which does not recover from a lost
//! executor (the static planner reruns the lost stages).

use std::time::Duration;

use ballista::prelude::SessionContextExt;
use ballista_core::extension::SessionConfigExt;
use datafusion::execution::{FunctionRegistry, SessionState};
use datafusion::prelude::SessionContext;
use url::Url;

use crate::QueryError;

/// The default port of a Ballista scheduler.
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// A session context whose queries run on the cluster at `url`
/// (`df://HOST:PORT`), with the tables and functions of `state`. The
/// scheduler must answer on its port: a cluster that cannot be reached
/// fails here, naming the URL, and not at the first query.
pub async fn remote_context(url: &str, state: SessionState) -> Result<SessionContext, QueryError> {
    let problem = |problem: String| QueryError::Cluster { url: url.to_owned(), problem };
    let parsed = Url::parse(url).map_err(|e| problem(format!("not a cluster URL ({e}); expected df://HOST:PORT")))?;
    if parsed.scheme() != "df" {
        return Err(problem("a cluster URL starts with df:// (df://HOST:PORT)".into()));
    }
    let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| problem("the URL names no host".into()))?;
    let port = parsed.port().unwrap_or(DEFAULT_SCHEDULER_PORT);
    let connect = tokio::net::TcpStream::connect((host, port));
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(problem(format!("cannot connect: {e}"))),
        Err(_) => return Err(problem("no answer within 5 s".into())),
    }
    // Ballista's adaptive planner (AQE, on by default in 55) does not recover
    // from a lost executor (apache/datafusion-ballista#1986): when a stage
    // whose input lived there is resubmitted, its task updates fail ("Can't
    // find active stage to update stage outputs") and the job never ends.
    // The static planner reruns the lost stages and finishes.
    let mut state = state;
    let config = state.config().clone().with_ballista_adaptive_query_planner(false);
    *state.config_mut() = config;
    // Ballista rebuilds the state with its own function lists, which leaves
    // out functions registered on `state` (the H3 ones); they are put back.
    let scalar: Vec<_> = state.scalar_functions().values().cloned().collect();
    let aggregate: Vec<_> = state.aggregate_functions().values().cloned().collect();
    let window: Vec<_> = state.window_functions().values().cloned().collect();
    let ctx = SessionContext::remote_with_state(url, state).await.map_err(|e| problem(e.to_string()))?;
    for function in scalar {
        if ctx.udf(function.name()).is_err() {
            ctx.register_udf(function.as_ref().clone());
        }
    }
    for function in aggregate {
        if ctx.udaf(function.name()).is_err() {
            ctx.register_udaf(function.as_ref().clone());
        }
    }
    for function in window {
        if ctx.udwf(function.name()).is_err() {
            ctx.register_udwf(function.as_ref().clone());
        }
    }
    Ok(ctx)
}
