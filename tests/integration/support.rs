//! Helpers shared by the test modules.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository").to_owned()
}

/// The `stroom` binary of the same build as this test binary
/// (`target/<profile>/stroom`, beside `target/<profile>/deps/`).
pub(crate) fn stroom_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("the test binary lives in target/<profile>/deps");
    let binary = profile_dir.join("stroom");
    assert!(binary.exists(), "{} is missing: build the workspace (cargo build --workspace) first", binary.display());
    binary
}

/// Runs the `stroom` binary with `args`.
pub(crate) fn stroom(args: &[&str]) -> Output {
    Command::new(stroom_binary()).args(args).output().expect("the stroom binary runs")
}

/// A multi-threaded runtime for the async store API.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime")
}

/// Runs `python3` with a script and arguments; panics with its output on failure.
pub(crate) fn python(script: &str, args: &[&str]) -> String {
    let output = Command::new("python3").arg("-c").arg(script).args(args).output().expect("python3 runs");
    assert!(
        output.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// A child process that is killed and reaped when dropped, so that a test
/// that fails leaves no process behind. Its stdout is read line by line on a
/// thread of its own (and drained to the end, so that the child never blocks
/// on a full pipe); its stderr goes to the test's.
pub(crate) struct Process {
    child: std::process::Child,
    name: String,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Process {
    /// Starts `command` and waits up to `limit` for a stdout line that starts
    /// with `ready`; returns the process and that line. A process that exits
    /// or stays silent fails the test, naming it.
    pub(crate) fn start(name: &str, command: Command, ready: &str, limit: std::time::Duration) -> (Process, String) {
        Self::try_start(name, command, ready, limit).unwrap_or_else(|problem| panic!("{problem}"))
    }

    /// [`Process::start`] that returns what went wrong instead of failing
    /// the test (the process, if it started, is killed).
    pub(crate) fn try_start(
        name: &str,
        mut command: Command,
        ready: &str,
        limit: std::time::Duration,
    ) -> Result<(Process, String), String> {
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{name} does not start: {e}"))?;
        let stdout = child.stdout.take().expect("a piped stdout");
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut sender = Some(sender);
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.as_ref().is_some_and(|s| s.send(line).is_err()) {
                    sender = None;
                }
            }
        });
        let mut process = Process { child, name: name.to_owned(), lines };
        let line = process.next_line(ready, limit)?;
        Ok((process, line))
    }

    /// Waits up to `limit` for a stdout line that starts with `prefix`.
    pub(crate) fn wait_for_line(&mut self, prefix: &str, limit: std::time::Duration) -> String {
        self.next_line(prefix, limit).unwrap_or_else(|problem| panic!("{problem}"))
    }

    fn next_line(&mut self, prefix: &str, limit: std::time::Duration) -> Result<String, String> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(_) => {}
                Err(_) => {
                    // Give a process that is exiting a moment to be reaped.
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    let status = self.child.try_wait().ok().flatten();
                    return Err(format!(
                        "{}: no line '{prefix}…' within {limit:?} (exit status {status:?})",
                        self.name
                    ));
                }
            }
        }
    }

    /// The process id.
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL and reaps it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit; its
    /// exit status, or `None` if it is still running (it is then killed).
    pub(crate) fn terminate(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(sent.success(), "kill -TERM {pid} ({}) failed", self.name);
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("the child can be waited for") {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.kill();
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
