//! The job journal: every state a backtest or refresh job reaches is
//! appended to a local JSON-lines file and synced to disk before the server
//! goes on, so that `GET` on a job still answers after a restart. At start
//! the journal is read back (the last line of each job wins); a job that was
//! queued or running when the process died is reported as `interrupted`
//! (and recorded so), never as running forever. The file is then rewritten
//! with one line per job, newest last, keeping the latest [`KEPT_JOBS`].
//!
//! A file beside the server rather than a Delta table in the store: a job
//! changes state three times in seconds, and a commit per change would add
//! versions and files to the store that every reader lists; the jobs are the
//! server's own state, like its audit log, and one appended line is written
//! with one `write` and synced, so that a kill leaves at most a torn last
//! line, which the next start skips.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::ApiError;
use crate::dto::{BacktestJob, JobStatus, RefreshJob};

/// Jobs kept when the journal is rewritten at start.
const KEPT_JOBS: usize = 10_000;

/// One line of the journal: a job as it is now.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum Entry {
    Backtest { job: BacktestJob, routes: BTreeSet<String> },
    Refresh { job: RefreshJob },
}

impl Entry {
    fn id(&self) -> &str {
        match self {
            Entry::Backtest { job, .. } => &job.id,
            Entry::Refresh { job } => &job.id,
        }
    }

    /// Marks a job that was queued or running as interrupted; `true` if it was.
    fn interrupt(&mut self, at: &str) -> bool {
        let (status, error, finished) = match self {
            Entry::Backtest { job, .. } => (&mut job.status, &mut job.error, &mut job.finished_at),
            Entry::Refresh { job } => (&mut job.status, &mut job.error, &mut job.finished_at),
        };
        if !matches!(status, JobStatus::Queued | JobStatus::Running) {
            return false;
        }
        let was = if *status == JobStatus::Running { "running" } else { "queued" };
        *status = JobStatus::Interrupted;
        *error = Some(format!("the server stopped while the job was {was}; submit it again"));
        *finished = Some(at.to_owned());
        true
    }
}

/// The open journal.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl Journal {
    /// Reads the journal at `path` (none yet is an empty one), marks the
    /// jobs it left unfinished as interrupted, rewrites it, and opens it for
    /// appending. Returns the jobs, oldest first.
    pub(crate) fn open(path: &Path, now: &str) -> Result<(Self, Vec<Entry>), ApiError> {
        let failed = |what: &str, e: std::io::Error| ApiError::Config(format!("{what} {}: {e}", path.display()));
        let mut entries: Vec<Entry> = Vec::new();
        let mut position: HashMap<String, usize> = HashMap::new();
        match std::fs::File::open(path) {
            Ok(file) => {
                let lines: Vec<String> = std::io::BufReader::new(file)
                    .lines()
                    .collect::<Result<_, _>>()
                    .map_err(|e| failed("reading", e))?;
                let count = lines.len();
                for (index, line) in lines.iter().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<Entry>(line) {
                        Ok(entry) => match position.get(entry.id()) {
                            Some(&at) => entries[at] = entry,
                            None => {
                                position.insert(entry.id().to_owned(), entries.len());
                                entries.push(entry);
                            }
                        },
                        // A kill during an append leaves a torn last line.
                        Err(error) if index + 1 == count => tracing::warn!(
                            journal = %path.display(), line = index + 1, %error,
                            "The job journal's last line is incomplete (the server was stopped while writing it); it is skipped."
                        ),
                        Err(error) => {
                            return Err(ApiError::Config(format!(
                                "{}, line {}: not a job record: {error}",
                                path.display(),
                                index + 1
                            )));
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed("opening", e)),
        }
        let interrupted = entries.iter_mut().map(|e| e.interrupt(now)).filter(|&was| was).count();
        if interrupted > 0 {
            tracing::warn!(jobs = interrupted, "Jobs left queued or running by the last server are now interrupted.");
        }
        let skip = entries.len().saturating_sub(KEPT_JOBS);
        let entries: Vec<Entry> = entries.into_iter().skip(skip).collect();
        // Rewritten whole, then renamed over the old journal.
        let mut text = String::new();
        for entry in &entries {
            text.push_str(&serde_json::to_string(entry).map_err(|e| ApiError::Internal(e.to_string()))?);
            text.push('\n');
        }
        let tmp = path.with_extension("jsonl.tmp");
        let rewrite = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        rewrite().map_err(|e| failed("rewriting", e))?;
        let file = std::fs::OpenOptions::new().append(true).open(path).map_err(|e| failed("opening", e))?;
        Ok((Self { path: path.to_owned(), file: Mutex::new(file) }, entries))
    }

    /// Appends a job's state and syncs it to disk. A failure is logged: the
    /// job goes on, and its state is still answered from memory.
    pub(crate) fn record(&self, entry: &Entry) {
        let mut line = match serde_json::to_string(entry) {
            Ok(line) => line,
            Err(error) => {
                tracing::error!(%error, "A job could not be written to the journal.");
                return;
            }
        };
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(error) = file.write_all(line.as_bytes()).and_then(|()| file.sync_data()) {
            tracing::error!(journal = %self.path.display(), %error, "A job could not be written to the journal.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refresh(id: &str, status: JobStatus) -> Entry {
        Entry::Refresh {
            job: RefreshJob {
                id: id.into(),
                status,
                trigger: Default::default(),
                submitted_at: "2026-01-01T00:00:00Z".into(),
                finished_at: None,
                error: None,
                run_id: None,
                targets: Vec::new(),
            },
        }
    }

    fn status(entry: &Entry) -> JobStatus {
        match entry {
            Entry::Backtest { job, .. } => job.status,
            Entry::Refresh { job } => job.status,
        }
    }

    #[test]
    fn unfinished_jobs_come_back_interrupted_and_a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.jsonl");
        let (journal, entries) = Journal::open(&path, "2026-01-01T00:00:00Z").unwrap();
        assert!(entries.is_empty());
        journal.record(&refresh("a", JobStatus::Queued));
        journal.record(&refresh("b", JobStatus::Queued));
        journal.record(&refresh("a", JobStatus::Running));
        journal.record(&refresh("a", JobStatus::Succeeded));
        journal.record(&refresh("b", JobStatus::Running));
        drop(journal);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(r#"{"kind":"refresh","job":{"id":"c","sta"#);
        std::fs::write(&path, text).unwrap();
        let (_, entries) = Journal::open(&path, "2026-01-02T00:00:00Z").unwrap();
        assert_eq!(entries.iter().map(status).collect::<Vec<_>>(), [JobStatus::Succeeded, JobStatus::Interrupted]);
        let Entry::Refresh { job } = &entries[1] else { panic!("a refresh") };
        assert_eq!(job.finished_at.as_deref(), Some("2026-01-02T00:00:00Z"));
        assert!(job.error.as_deref().unwrap().contains("was running"), "{job:?}");
        // Rewritten with one line per job; opened again, nothing changes.
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        let (_, again) = Journal::open(&path, "2026-01-03T00:00:00Z").unwrap();
        assert_eq!(again.iter().map(status).collect::<Vec<_>>(), [JobStatus::Succeeded, JobStatus::Interrupted]);
        // A bad line before the last is an error naming the line.
        std::fs::write(&path, "not json\n{}\n").unwrap();
        let error = Journal::open(&path, "2026-01-03T00:00:00Z").unwrap_err().to_string();
        assert!(error.contains("jobs.jsonl, line 1"), "{error}");
    }
}
