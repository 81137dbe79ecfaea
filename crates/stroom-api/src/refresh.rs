//! Forecast refreshes: the job that makes a new forecast run, started by an
//! admin (`POST /v1/forecasts/refresh`) or, with `--refresh auto` (or an
//! interval), by the server itself whenever the data the served run was made
//! from has changed: the `density` or `arrivals` version differs from the
//! newest run's vintage. That comparison is made against the store, so it
//! holds across restarts and for ingests made outside the server. A refresh
//! that fails is not tried again on the same data versions (the next ingest
//! starts one); older runs stay in the `forecasts` table and `?run=` serves
//! them. What the last refresh did, the data versions and whether the served
//! run is current are in `/readyz` and `/metrics`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::ApiError;
use crate::dto::{JobStatus, RefreshJob, RefreshStatus, RefreshTrigger};
use crate::handlers::now;
use crate::state::{AppState, admit_job};

/// What the server knows of its refreshes, for `/readyz` and `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Refreshes {
    /// The data versions when last checked (automatic refreshes only).
    data_versions: Option<BTreeMap<String, u64>>,
    checked_at: Option<String>,
    /// Refresh jobs that failed since the server started.
    failures: u64,
    last_success_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl AppState {
    /// The refresh section of `/readyz`.
    pub(crate) fn refresh_status(&self) -> RefreshStatus {
        let info = self.refreshes.lock().unwrap_or_else(|p| p.into_inner());
        let served = self.snapshot().data.runs.first().map(|r| r.vintage.clone());
        let current = match (&info.data_versions, &served) {
            (Some(data), Some(served)) => Some(is_current(data, served)),
            (Some(data), None) => Some(data.is_empty()),
            _ => None,
        };
        let last = {
            let jobs = self.jobs.refreshes.lock().unwrap_or_else(|p| p.into_inner());
            jobs.values().max_by(|a, b| a.submitted_at.cmp(&b.submitted_at).then(a.id.cmp(&b.id))).cloned()
        };
        RefreshStatus {
            mode: if self.config.refresh_every.is_some() { "auto" } else { "off" }.to_owned(),
            check_interval_s: self.config.refresh_every.map(|d| d.as_secs_f64()),
            served_vintage: served,
            data_versions: info.data_versions.clone(),
            checked_at: info.checked_at.clone(),
            current,
            last_refresh: last,
            failures: info.failures,
        }
    }

    /// Gauges of the refreshes for `/metrics`.
    pub(crate) fn refresh_gauges(&self) -> Vec<(&'static str, &'static str, f64)> {
        let status = self.refresh_status();
        let info = self.refreshes.lock().unwrap_or_else(|p| p.into_inner());
        let mut gauges = vec![
            ("stroom_refresh_failures", "Refresh jobs that failed since the server started.", info.failures as f64),
            (
                "stroom_refresh_last_success_timestamp_seconds",
                "When a refresh last succeeded (Unix time; 0 before the first).",
                info.last_success_at.map_or(0.0, |t| t.timestamp() as f64),
            ),
        ];
        if let Some(current) = status.current {
            gauges.push((
                "stroom_forecasts_current",
                "1 when the served run was made from the latest data versions (automatic refreshes only).",
                f64::from(u8::from(current)),
            ));
        }
        gauges
    }

    /// Whether a refresh job is queued or running.
    fn refresh_pending(&self) -> bool {
        let jobs = self.jobs.refreshes.lock().unwrap_or_else(|p| p.into_inner());
        jobs.values().any(|j| matches!(j.status, JobStatus::Queued | JobStatus::Running))
    }
}

/// Whether a run of vintage `served` was made from the data versions `data`.
fn is_current(data: &BTreeMap<String, u64>, served: &BTreeMap<String, u64>) -> bool {
    data.iter().all(|(table, version)| served.get(table) == Some(version))
}

/// Queues a refresh job (429 when too many jobs are queued) and starts its
/// task; the handle resolves to the job's final status.
pub(crate) fn spawn_refresh(
    state: &Arc<AppState>,
    trigger: RefreshTrigger,
) -> Result<(RefreshJob, tokio::task::JoinHandle<JobStatus>), ApiError> {
    admit_job(state)?;
    let id = uuid::Uuid::new_v4().to_string();
    let job = RefreshJob {
        id: id.clone(),
        status: JobStatus::Queued,
        trigger,
        submitted_at: now(),
        finished_at: None,
        error: None,
        run_id: None,
        targets: Vec::new(),
    };
    state.journal_refresh(&job);
    state.jobs.refreshes.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), job.clone());
    let worker = state.clone();
    let handle = tokio::spawn(async move {
        let permit = worker.jobs.worker.acquire().await;
        let update = |f: &dyn Fn(&mut RefreshJob)| {
            if let Some(job) = worker.jobs.refreshes.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&id) {
                f(job);
                worker.journal_refresh(job);
            }
        };
        update(&|job| job.status = JobStatus::Running);
        let status = match worker.backend.refresh().await {
            Ok((run_id, targets)) => {
                if let Err(error) = worker.reload(true).await {
                    tracing::error!(%error, "Reloading forecasts after a refresh failed.");
                }
                worker.refreshes.lock().unwrap_or_else(|p| p.into_inner()).last_success_at = Some(chrono::Utc::now());
                update(&|job| {
                    job.status = JobStatus::Succeeded;
                    job.run_id = Some(run_id.clone());
                    job.targets = targets.clone();
                    job.finished_at = Some(now());
                });
                JobStatus::Succeeded
            }
            Err(error) => {
                tracing::warn!(job = %id, %error, "A refresh job failed.");
                worker.refreshes.lock().unwrap_or_else(|p| p.into_inner()).failures += 1;
                update(&|job| {
                    job.status = JobStatus::Failed;
                    job.error = Some("the refresh failed; the failure is in the server's log".into());
                    job.finished_at = Some(now());
                });
                JobStatus::Failed
            }
        };
        drop(permit);
        worker.jobs.active.fetch_sub(1, Ordering::SeqCst);
        status
    });
    Ok((job, handle))
}

/// Checks every `every` whether the served run is behind the data, and
/// refreshes when it is.
pub(crate) async fn refresh_automatically(state: Arc<AppState>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The data versions a refresh failed on: not tried again until they change.
    let mut failed_on: Option<BTreeMap<String, u64>> = None;
    loop {
        ticks.tick().await;
        let versions = match state.backend.data_versions().await {
            Ok(versions) => versions,
            Err(error) => {
                tracing::warn!(%error, "Reading the data versions for an automatic refresh failed.");
                continue;
            }
        };
        {
            let mut info = state.refreshes.lock().unwrap_or_else(|p| p.into_inner());
            info.data_versions = Some(versions.clone());
            info.checked_at = Some(now());
        }
        let served = state.snapshot().data.runs.first().map(|r| r.vintage.clone());
        let behind = match &served {
            Some(served) => !is_current(&versions, served),
            None => !versions.is_empty(),
        };
        if !behind || failed_on.as_ref() == Some(&versions) || state.refresh_pending() {
            continue;
        }
        tracing::info!(?versions, ?served, "The data changed since the served forecast run; refreshing.");
        match spawn_refresh(&state, RefreshTrigger::Auto) {
            Ok((_, handle)) => {
                failed_on = match handle.await {
                    Ok(JobStatus::Succeeded) => None,
                    _ => Some(versions),
                };
            }
            Err(error) => tracing::info!(%error, "An automatic refresh waits: the job queue is full."),
        }
    }
}

/// Parses `--refresh`: `off`, `auto` (a check every 10 s) or the check
/// interval (`30s`, `5m`, `1h`, `500ms`; see [`stroom_core::parse_duration`]).
pub fn parse_refresh(text: &str) -> Result<Option<Duration>, String> {
    let bad = || format!("'{text}' is not a refresh setting: use off, auto, or an interval such as 30s, 5m, 1h");
    match text {
        "off" => return Ok(None),
        "auto" => return Ok(Some(Duration::from_secs(10))),
        _ => {}
    }
    match stroom_core::parse_duration(text) {
        Ok(every) if !every.is_zero() => Ok(Some(every)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_settings_parse_and_vintages_compare() {
        assert_eq!(parse_refresh("off"), Ok(None));
        assert_eq!(parse_refresh("auto"), Ok(Some(Duration::from_secs(10))));
        assert_eq!(parse_refresh("90s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse_refresh("5m"), Ok(Some(Duration::from_secs(300))));
        assert_eq!(parse_refresh("250ms"), Ok(Some(Duration::from_millis(250))));
        for bad in ["", "0s", "5", "s", "5y", "-1s", "on"] {
            assert!(parse_refresh(bad).is_err(), "{bad}");
        }
        let versions = |d: u64, a: u64| BTreeMap::from([("density".to_owned(), d), ("arrivals".to_owned(), a)]);
        assert!(is_current(&versions(3, 1), &versions(3, 1)));
        assert!(!is_current(&versions(4, 1), &versions(3, 1)));
        assert!(!is_current(&versions(3, 2), &versions(3, 1)));
    }
}
