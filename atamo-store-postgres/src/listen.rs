//! The wake-up hint: a connection LISTENing on the schema's channel.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{oneshot, Notify};
use tokio_postgres::{AsyncMessage, Config, NoTls};

/// Listens on `channel` and wakes `wake` on every notification, until `stop` resolves (the
/// store was dropped). A lost connection is logged and opened again, with a growing pause; the
/// hint fires after each (re)connection, since notifications may have been missed meanwhile.
pub(crate) async fn listener(
    config: Config,
    channel: String,
    wake: Arc<Notify>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut pause = Duration::from_millis(100);
    loop {
        let mut listening = false;
        let listening_now = listen_once(&config, &channel, &wake, &mut listening);
        let ended = tokio::select! {
            _ = &mut stop => return,
            ended = listening_now => ended,
        };
        if listening {
            pause = Duration::from_millis(100);
        }
        match ended {
            Ok(()) => tracing::warn!(
                channel,
                "the store's notification connection was closed; opening it again"
            ),
            Err(e) => tracing::warn!(
                channel,
                error = %e,
                retry_in = ?pause,
                "the store's notification connection failed; opening it again"
            ),
        }
        wake.notify_one();
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// One connection: LISTEN, then forward notifications until it ends.
async fn listen_once(
    config: &Config,
    channel: &str,
    wake: &Notify,
    listening: &mut bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut conn) = config.connect(NoTls).await?;
    // `poll_message` drives the connection and yields what the server sends unasked.
    let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
    let sql = format!("LISTEN {channel}");
    let listen = client.batch_execute(&sql);
    tokio::pin!(listen);
    loop {
        tokio::select! {
            done = &mut listen, if !*listening => {
                done?;
                *listening = true;
                tracing::debug!(channel, "listening for ready actions");
                // Anything sent while no one listened is lost: wake once.
                wake.notify_one();
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
        }
    }
}
