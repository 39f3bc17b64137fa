//! The program's output: standard output read line by line as answers, the end of standard
//! error kept for failure reasons.

use std::process::ExitStatus;
use std::time::Duration;

use atamo_core::agent::CallContext;
use atamo_core::request::AnswerError;
use serde_json::json;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::Child;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How the program's run ended, before its exit status is judged.
pub(super) enum Ended {
    /// It exited (`lines` stdout lines read).
    Exited { status: ExitStatus, lines: u64 },
    /// The time limit passed.
    TimedOut,
    /// The call was cancelled or its request ended.
    Cancelled,
    /// A stdout line was longer than allowed.
    LineTooLong,
    /// Reading stdout or waiting for the program failed.
    Io(std::io::Error),
}

/// Reads stdout line by line, answering each, then waits for the program to exit.
pub(super) async fn read_and_wait(
    child: &mut Child,
    stdout: impl AsyncRead + Unpin,
    max_line: usize,
    ctx: &CallContext,
) -> Ended {
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    let mut lines = 0u64;
    let mut answering = true;
    loop {
        match read_line(&mut reader, &mut buf, max_line).await {
            Ok(Line::Eof) => break,
            Ok(Line::TooLong) => return Ended::LineTooLong,
            Ok(Line::Text(line)) => {
                lines += 1;
                if answering {
                    match ctx.answer(json!({ "line": line })).await {
                        Ok(()) => {}
                        Err(AnswerError::NotARequest) => answering = false,
                        Err(_) => return Ended::Cancelled,
                    }
                }
            }
            Err(e) => return Ended::Io(e),
        }
    }
    match child.wait().await {
        Ok(status) => Ended::Exited { status, lines },
        Err(e) => Ended::Io(e),
    }
}

enum Line {
    Text(String),
    TooLong,
    Eof,
}

/// One line of at most `max` bytes (without its `\n` or `\r\n`), as lossy UTF-8.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    buf.clear();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let n = (&mut *reader).take(limit).read_until(b'\n', buf).await?;
    if n == 0 {
        return Ok(Line::Eof);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    } else if buf.len() > max {
        return Ok(Line::TooLong);
    }
    Ok(Line::Text(String::from_utf8_lossy(buf).into_owned()))
}

/// The last `max` bytes a stream gives before it ends.
pub(super) async fn tail<R: AsyncRead + Unpin>(mut reader: R, max: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut chunk = vec![0u8; 8192];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > max.saturating_mul(2).max(8192) {
                    let cut = kept.len() - max;
                    kept.drain(..cut);
                }
            }
        }
    }
    if kept.len() > max {
        let cut = kept.len() - max;
        kept.drain(..cut);
    }
    kept
}

/// How long stderr may take to reach its end once the program has exited or been killed, past
/// the call's deadline.
pub(super) const STDERR_GRACE: Duration = Duration::from_millis(100);

/// The text the stderr task kept, or nothing if it does not end by `until`.
pub(super) async fn collect_stderr(task: Option<JoinHandle<Vec<u8>>>, until: Instant) -> String {
    let Some(task) = task else {
        return String::new();
    };
    let abort = task.abort_handle();
    match tokio::time::timeout_at(until, task).await {
        Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).trim_end().to_owned(),
        _ => {
            abort.abort();
            String::new()
        }
    }
}

pub(super) fn abort_stderr(task: Option<JoinHandle<Vec<u8>>>) {
    if let Some(task) = task {
        task.abort();
    }
}

pub(super) fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; stderr: {stderr}")
    }
}
