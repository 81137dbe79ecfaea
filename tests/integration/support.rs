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
