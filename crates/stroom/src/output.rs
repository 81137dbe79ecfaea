//! What the binary writes: results to standard output, through [`stdout`],
//! and a failure to standard error as one line, through [`error_text`].

use std::fmt;
use std::io::{self, ErrorKind, Write};

/// Standard output, locked, for a command's results. Write with `writeln!`
/// and `?`: when the reader stops early (`stroom routes | head -1`) and
/// closes the pipe, the write fails, and `main` ends the command quietly
/// with success, as ripgrep does (see [`stdout_closed`]).
pub(crate) fn stdout() -> Stdout {
    Stdout(io::stdout().lock())
}

/// See [`stdout`].
pub(crate) struct Stdout(io::StdoutLock<'static>);

impl Write for Stdout {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.write(bytes).map_err(mark_closed)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(mark_closed)
    }
}

/// The cause inside the broken-pipe error of a write to [`stdout`], which
/// tells a closed standard output from any other broken pipe (a network
/// peer that went away is a failure, not the end of the output).
#[derive(Debug)]
struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

fn mark_closed(error: io::Error) -> io::Error {
    if error.kind() == ErrorKind::BrokenPipe { io::Error::new(ErrorKind::BrokenPipe, StdoutClosed) } else { error }
}

/// Whether a command failed because its standard output was closed.
pub(crate) fn stdout_closed(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<io::Error>().and_then(io::Error::get_ref).is_some_and(|inner| inner.is::<StdoutClosed>())
    })
}

/// An error and its causes in one line, each named once. stroom's error
/// types name a cause or return it as their source, never both; those of
/// deltalake, DataFusion and Arrow also repeat their cause's message in
/// their own, so a cause whose message the line already holds is left out.
pub(crate) fn error_text(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
    }
    text
}
