//! The audit log: one JSON line per request (time, key id, role, method,
//! path, status, latency, request id, and for an upload its hash and row
//! counts), appended by a writer thread so that
//! requests never wait on the disk. Entries reach the file within about
//! ten milliseconds, written in batches.

use std::io::Write;
use std::path::Path;
use std::sync::mpsc;

use serde::Serialize;

use crate::ApiError;

/// How long the writer waits for more entries before it writes a batch.
const BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

/// One request as the audit log records it.
#[derive(Debug, Serialize)]
pub(crate) struct AuditEntry<'a> {
    pub(crate) time: String,
    pub(crate) key_id: Option<&'a str>,
    pub(crate) role: Option<&'a str>,
    /// `revoked` or `expired` when the token was a key's that is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key_state: Option<&'a str>,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) status: u16,
    pub(crate) latency_ms: f64,
    pub(crate) request_id: Option<&'a str>,
    /// What an upload delivered: its hash, its rows and what was suppressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) upload: Option<&'a crate::upload::UploadAudit>,
}

/// A handle to the writer thread. [`AuditLog::close`] ends the thread after
/// it has written and flushed everything it was sent.
#[derive(Debug)]
pub(crate) struct AuditLog {
    sender: mpsc::Sender<String>,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl AuditLog {
    /// Opens `path` for appending and starts the writer thread.
    pub(crate) fn open(path: &Path) -> Result<Self, ApiError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| ApiError::Config(format!("opening the audit log {}: {e}", path.display())))?;
        let (sender, receiver) = mpsc::channel::<String>();
        let writer = std::thread::Builder::new()
            .name("stroom-audit".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::new(file);
                // An empty line is the signal to stop.
                'receive: while let Ok(line) = receiver.recv() {
                    // Let the entries of the next few milliseconds queue up
                    // behind this one: under load the thread then wakes a
                    // hundred times a second instead of once per request.
                    std::thread::sleep(BATCH_WAIT);
                    let mut lines = vec![line];
                    lines.extend(receiver.try_iter());
                    let mut stop = false;
                    for line in lines {
                        if line.is_empty() {
                            stop = true;
                        } else if let Err(error) = out.write_all(line.as_bytes()) {
                            tracing::error!(%error, "Writing the audit log failed.");
                        }
                    }
                    if let Err(error) = out.flush() {
                        tracing::error!(%error, "Flushing the audit log failed.");
                    }
                    if stop {
                        break 'receive;
                    }
                }
            })
            .map_err(|e| ApiError::Config(format!("starting the audit writer: {e}")))?;
        Ok(Self { sender, writer: std::sync::Mutex::new(Some(writer)) })
    }

    /// Queues one entry.
    pub(crate) fn record(&self, entry: &AuditEntry<'_>) {
        if let Ok(mut line) = serde_json::to_string(entry) {
            line.push('\n');
            let _ = self.sender.send(line);
        }
    }

    /// Stops the writer after it has flushed every entry queued before.
    pub(crate) fn close(&self) {
        let _ = self.sender.send(String::new());
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}
