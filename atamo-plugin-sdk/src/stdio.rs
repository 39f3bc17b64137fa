//! Running a plugin's kinds as a process agent: JSON lines over stdin and stdout.
//!
//! The host writes [`HostMessage`]s, one per line, and reads [`PluginMessage`]s. The first
//! exchange is `hello`: the host names the kind and its init metadata, the program answers
//! `hello` with its protocol version (or `init_failed`). Stdout carries protocol lines only:
//! `tracing` output goes to stderr, which the host copies into its log.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use atamo_plugin_protocol::{CallError, HostMessage, PluginMessage, PROCESS_PROTOCOL_VERSION};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec};

use crate::call::{Call, Emit, Sink};
use crate::kinds::{run_call, Made, MakeError, Plugin};

/// The longest line accepted from the host, in bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Serves `plugin` over this process's stdin and stdout until the host says goodbye or closes
/// stdin. Use it as the whole of a process agent's `main`:
///
/// ```no_run
/// # fn plugin() -> atamo_plugin_sdk::Plugin { atamo_plugin_sdk::Plugin::new("x", "1") }
/// fn main() -> std::process::ExitCode {
///     atamo_plugin_sdk::serve_stdio(plugin())
/// }
/// ```
pub fn serve_stdio(plugin: Plugin) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start a runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(serve_stdio_with(
        plugin,
        tokio::io::stdin(),
        tokio::io::stdout(),
    ));
    // Everything written has been flushed by now. A read of stdin may still be pending on a
    // blocking thread (stdin reads cannot be interrupted), and waiting for it would keep the
    // process alive until the host closes the pipe: leave it behind.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{err}");
            ExitCode::FAILURE
        }
    }
}

/// Why serving stopped with an error.
#[derive(Debug)]
pub struct StdioError(String);

impl std::fmt::Display for StdioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StdioError {}

/// [`serve_stdio`] over any reader and writer (tests use in-memory pipes).
pub async fn serve_stdio_with<R, W>(plugin: Plugin, input: R, output: W) -> Result<(), StdioError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut lines = FramedRead::new(input, LinesCodec::new_with_max_length(MAX_LINE_BYTES));
    let (tx, rx) = mpsc::unbounded_channel::<PluginMessage>();
    let writer = tokio::spawn(write_lines(rx, output));

    let hello = match lines.next().await {
        Some(Ok(line)) => serde_json::from_str::<HostMessage>(&line)
            .map_err(|e| StdioError(format!("the first line is not a hello: {e}")))?,
        Some(Err(e)) => return Err(StdioError(format!("cannot read the hello: {e}"))),
        None => return Ok(()),
    };
    let HostMessage::Hello {
        protocol,
        kind,
        config,
        ..
    } = hello
    else {
        return Err(StdioError("the first line is not a hello".to_owned()));
    };
    if protocol != PROCESS_PROTOCOL_VERSION {
        let error = format!(
            "the host speaks protocol {protocol}, this program speaks {PROCESS_PROTOCOL_VERSION}"
        );
        let _ = tx.send(PluginMessage::InitFailed {
            error: error.clone(),
        });
        drop(tx);
        let _ = writer.await;
        return Err(StdioError(error));
    }
    let agent = match plugin.make(&kind, config) {
        Ok(Made::Agent(agent)) => agent,
        Ok(Made::Provider(_)) => {
            let error = format!("kind `{kind}` is a rule provider, not an agent");
            return fail_init(tx, writer, error).await;
        }
        Err(MakeError::UnknownKind(kind)) => {
            let error = format!("program `{}` offers no kind `{kind}`", plugin.name());
            return fail_init(tx, writer, error).await;
        }
        Err(MakeError::Init(error)) => return fail_init(tx, writer, error).await,
    };
    let _ = tx.send(PluginMessage::Hello {
        protocol: PROCESS_PROTOCOL_VERSION,
        name: plugin.name().to_owned(),
        version: plugin.version().to_owned(),
    });

    let calls: Arc<Mutex<HashMap<u64, Call>>> = Arc::default();
    let sink: Sink = {
        let tx = tx.clone();
        let calls = calls.clone();
        Arc::new(move |id, emit| {
            let message = match emit {
                Emit::Data(payload) => PluginMessage::Data { id, payload },
                Emit::EndOk(payload) => {
                    calls.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                    PluginMessage::End { id, payload }
                }
                Emit::EndErr(error) => {
                    calls.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                    PluginMessage::Error { id, error }
                }
            };
            let _ = tx.send(message);
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    let find = |id: u64| {
        calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    };
    // After `goodbye`, lines are still read (credits and cancels for the calls finishing) until
    // the last call ends; new calls are refused as retryable.
    let mut goodbye = false;
    loop {
        if goodbye && tasks.is_empty() {
            break;
        }
        let line = tokio::select! {
            line = lines.next() => line,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let Some(line) = line else {
            // Stdin closed: the host is gone; nobody will read the answers.
            for call in calls.lock().unwrap_or_else(|p| p.into_inner()).values() {
                call.cancel();
            }
            break;
        };
        let line = line.map_err(|e| StdioError(format!("cannot read from the host: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let message: HostMessage = match serde_json::from_str(&line) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!("ignoring a line that is not a host message: {e}");
                continue;
            }
        };
        match message {
            HostMessage::Call { id, .. } if goodbye => {
                let _ = tx.send(PluginMessage::Error {
                    id,
                    error: CallError::retry("the program is stopping"),
                });
            }
            HostMessage::Call {
                id,
                request,
                credits,
            } => {
                let call = Call::new(id, credits, sink.clone());
                calls
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, call.clone());
                tasks.spawn(run_call(agent.clone(), request, call));
            }
            HostMessage::Credit { id, credits } => {
                if let Some(call) = find(id) {
                    call.grant(credits);
                }
            }
            HostMessage::Cancel { id } => {
                if let Some(call) = find(id) {
                    call.cancel();
                }
            }
            HostMessage::Ping { id } => {
                let _ = tx.send(PluginMessage::Pong { id });
            }
            HostMessage::Goodbye => goodbye = true,
            HostMessage::Hello { .. } => tracing::warn!("ignoring a second hello"),
        }
    }
    while tasks.join_next().await.is_some() {}
    drop(sink);
    drop(tx);
    let _ = writer.await;
    Ok(())
}

async fn fail_init(
    tx: mpsc::UnboundedSender<PluginMessage>,
    writer: tokio::task::JoinHandle<()>,
    error: String,
) -> Result<(), StdioError> {
    let _ = tx.send(PluginMessage::InitFailed {
        error: error.clone(),
    });
    drop(tx);
    let _ = writer.await;
    Err(StdioError(format!("init failed: {error}")))
}

/// Writes each message as one line, flushing when no more are waiting.
async fn write_lines<W: AsyncWrite + Unpin>(
    mut rx: mpsc::UnboundedReceiver<PluginMessage>,
    mut output: W,
) {
    let mut buffer = Vec::with_capacity(4096);
    while let Some(message) = rx.recv().await {
        buffer.clear();
        push_line(&mut buffer, &message);
        while let Ok(more) = rx.try_recv() {
            push_line(&mut buffer, &more);
            if buffer.len() > 1 << 20 {
                break;
            }
        }
        if output.write_all(&buffer).await.is_err() || output.flush().await.is_err() {
            return;
        }
    }
}

fn push_line(buffer: &mut Vec<u8>, message: &PluginMessage) {
    if serde_json::to_writer(&mut *buffer, message).is_ok() {
        buffer.push(b'\n');
    }
}
