//! Line-level I/O with a child: reading capped lines, writing protocol lines, and copying its
//! stderr into the log.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use atamo_core::AgentId;
use atamo_plugin_protocol::HostMessage;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// The longest stderr line copied to the log whole; longer ones are cut.
const MAX_STDERR_LINE: usize = 64 * 1024;

/// What [`LineReader::next_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// A whole line, without its `\n` (and `\r`), in the reader's buffer.
    Complete,
    /// A line longer than the limit; its first `max` bytes are in the buffer, the rest was
    /// skipped.
    TooLong,
    /// The end of the stream.
    Eof,
}

/// How far the reading of a process's stdout has come: proof that it is alive, and that a
/// late `pong` is late because the host is still busy with what came before it.
#[derive(Debug, Default)]
pub(super) struct Activity {
    progress: AtomicU64,
    busy: AtomicBool,
}

impl Activity {
    /// Counts bytes read (or a line handled).
    pub(super) fn bump(&self) {
        self.progress.fetch_add(1, Ordering::Relaxed);
    }

    /// A mark to compare with later: a different one means something was read meanwhile.
    pub(super) fn mark(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    /// Whether the host is handling a line now.
    pub(super) fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }

    pub(super) fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::Relaxed);
    }
}

/// Reads `\n`-terminated lines of bytes, keeping at most `max` bytes of each. Cancel-safe:
/// all state lives in the reader, and nothing is consumed across an await.
pub(super) struct LineReader<R> {
    inner: BufReader<R>,
    /// The longest line kept, in bytes.
    pub(super) max: usize,
    /// The current line (so far).
    pub(super) buf: Vec<u8>,
    /// Whether the current line has gone past `max`.
    overflow: bool,
    /// Whether `buf` holds a finished line that the next call must clear first.
    done: bool,
    /// Bumped for every chunk read, when set.
    activity: Option<Arc<Activity>>,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub(super) fn new(inner: R, max: usize) -> Self {
        Self {
            inner: BufReader::with_capacity(64 * 1024, inner),
            max,
            buf: Vec::new(),
            overflow: false,
            done: false,
            activity: None,
        }
    }

    /// Reports every chunk read to `activity`.
    pub(super) fn with_activity(mut self, activity: Arc<Activity>) -> Self {
        self.activity = Some(activity);
        self
    }

    /// The next line; its bytes are in `self.buf` until the next call.
    pub(super) async fn next_line(&mut self) -> io::Result<Line> {
        if self.done {
            self.buf.clear();
            self.overflow = false;
            self.done = false;
        }
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                if self.buf.is_empty() && !self.overflow {
                    return Ok(Line::Eof);
                }
                // A last line without its newline.
                self.done = true;
                return Ok(if self.overflow {
                    Line::TooLong
                } else {
                    Line::Complete
                });
            }
            let (chunk, used, finished) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            let room = self.max.saturating_sub(self.buf.len());
            if chunk.len() > room {
                self.overflow = true;
            }
            self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            Pin::new(&mut self.inner).consume(used);
            if let Some(activity) = &self.activity {
                activity.bump();
            }
            if finished {
                if self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
                self.done = true;
                return Ok(if self.overflow {
                    Line::TooLong
                } else {
                    Line::Complete
                });
            }
        }
    }
}

/// Writes each message as one JSON line, several per write when they queue up, until the
/// channel closes or the pipe breaks (the process is gone).
pub(super) async fn write_lines<W: AsyncWrite + Unpin>(
    mut rx: mpsc::UnboundedReceiver<HostMessage>,
    mut output: W,
) {
    let mut buffer = Vec::with_capacity(4096);
    while let Some(message) = rx.recv().await {
        buffer.clear();
        push_line(&mut buffer, &message);
        while buffer.len() < 1 << 20 {
            match rx.try_recv() {
                Ok(more) => push_line(&mut buffer, &more),
                Err(_) => break,
            }
        }
        if output.write_all(&buffer).await.is_err() || output.flush().await.is_err() {
            return;
        }
    }
}

fn push_line(buffer: &mut Vec<u8>, message: &HostMessage) {
    match serde_json::to_writer(&mut *buffer, message) {
        Ok(()) => buffer.push(b'\n'),
        Err(e) => tracing::error!("cannot encode a message for the process: {e}"),
    }
}

/// Copies the child's stderr into the log, line by line, at the level the line names (the
/// SDK's `tracing` output and Python's `logging` both put it near the start), info otherwise.
pub(super) async fn forward_stderr<R: AsyncRead + Unpin>(agent: AgentId, pid: u32, stderr: R) {
    let mut lines = LineReader::new(stderr, MAX_STDERR_LINE);
    loop {
        let cut = match lines.next_line().await {
            Ok(Line::Complete) => "",
            Ok(Line::TooLong) => " [line cut]",
            Ok(Line::Eof) | Err(_) => return,
        };
        let text = String::from_utf8_lossy(&lines.buf);
        log_line(&agent, pid, &text, cut);
    }
}

/// The log target of the programs' stderr lines (`RUST_LOG=atamo::process=warn` quiets them).
pub const STDERR_TARGET: &str = "atamo::process";

fn log_line(agent: &AgentId, pid: u32, line: &str, cut: &str) {
    let agent = agent.as_str();
    match level_of(line) {
        tracing::Level::ERROR => tracing::error!(target: STDERR_TARGET, agent, pid, "{line}{cut}"),
        tracing::Level::WARN => tracing::warn!(target: STDERR_TARGET, agent, pid, "{line}{cut}"),
        tracing::Level::DEBUG => tracing::debug!(target: STDERR_TARGET, agent, pid, "{line}{cut}"),
        tracing::Level::TRACE => tracing::trace!(target: STDERR_TARGET, agent, pid, "{line}{cut}"),
        _ => tracing::info!(target: STDERR_TARGET, agent, pid, "{line}{cut}"),
    }
}

/// The level a log line names among its first few words.
fn level_of(line: &str) -> tracing::Level {
    for word in line.split_whitespace().take(4) {
        let word = word.split(':').next().unwrap_or(word);
        let word = word.trim_matches(|c: char| !c.is_ascii_alphabetic());
        match word {
            "ERROR" | "CRITICAL" => return tracing::Level::ERROR,
            "WARN" | "WARNING" => return tracing::Level::WARN,
            "INFO" => return tracing::Level::INFO,
            "DEBUG" => return tracing::Level::DEBUG,
            "TRACE" => return tracing::Level::TRACE,
            _ => {}
        }
    }
    tracing::Level::INFO
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn lines_are_capped_and_the_rest_skipped() {
        let input: &[u8] = b"short\r\nthis one is too long\nok\nlast";
        let mut r = LineReader::new(input, 8);
        assert_eq!(r.next_line().await.unwrap(), Line::Complete);
        assert_eq!(r.buf, b"short");
        assert_eq!(r.next_line().await.unwrap(), Line::TooLong);
        assert_eq!(r.buf, b"this one");
        assert_eq!(r.next_line().await.unwrap(), Line::Complete);
        assert_eq!(r.buf, b"ok");
        assert_eq!(r.next_line().await.unwrap(), Line::Complete);
        assert_eq!(r.buf, b"last");
        assert_eq!(r.next_line().await.unwrap(), Line::Eof);
    }

    #[test]
    fn levels_are_found_near_the_start() {
        assert_eq!(
            level_of("2024-01-01T00:00:00Z  WARN atamo: slow"),
            tracing::Level::WARN
        );
        assert_eq!(level_of("ERROR:agent.py:boom"), tracing::Level::ERROR);
        assert_eq!(level_of("just text about an ERROR"), tracing::Level::INFO);
    }
}
