//! Guide 06: act on an event. A rule turns `order.created` into an `email.send` action for the
//! built-in email agent; the agent sends the mail over SMTP. So that it runs with no setup, the
//! example starts its own tiny SMTP receiver on 127.0.0.1 and prints what it received.
//!
//! Run it: `cargo run -p atamo-examples --example act_on_event`

use std::sync::Arc;
use std::time::Duration;

use atamo_agents::builtin::email::EmailAgent;
use atamo_agents::builtin::NoCredentials;
use atamo_config::{Rule, RuleBook};
use atamo_core::rules::ProviderScope;
use atamo_core::{ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, Principal};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 0. An SMTP server to send to. Yours would be `smtp.example.com`, port 587, STARTTLS.
    let (port, received) = smtp_receiver::start()?;

    // 1. The rule: an order's creation sends the customer a confirmation. The template fills
    //    the action from the event.
    let rules = RuleBook::with_rules(vec![Rule::new(
        "confirm-order",
        "order.created",
        "mailer",
        "email.send",
        json!({
            "to": "{{payload.customer.email}}",
            "subject": "Order {{payload.order.id}} confirmed",
            "body": "Hello {{payload.customer.name}},\n\nyour order {{payload.order.id}} is confirmed.\n"
        }),
    )])?;

    // 2. The email agent: its registration says where mail goes out and as whom. A mistake
    //    here fails now, with every problem named.
    let config = json!({
        "host": "127.0.0.1",
        "port": port,
        "tls": "none",
        "sender": "Atamo <hub@example.com>",
        "timeout_ms": 5000
    });
    let mailer = EmailAgent::from_config("mailer", &config, Arc::new(NoCredentials))?;

    // 3. The hub.
    let hub = Hub::builder()
        .event_type(EventTypeDef::new("order.created").requiring(["order.id", "customer.email"])?)
        .action_type(ActionTypeDef::new("email.send"))
        .agent(
            AgentSpec::new("mailer", mailer)
                .handles(["email.send"])
                .metadata(config),
        )
        .provider("rules", rules, ProviderScope::AllEvents)
        .build()?;

    // 4. The event. Sent as a request so that we can wait for the agent's reply; `publish`
    //    would fire and forget.
    let order =
        json!({"order": {"id": 42}, "customer": {"email": "carol@example.com", "name": "Carol"}});
    let event = Event::new("order.created", Principal::user("alice"), order);
    let handle = hub.handle();
    let receipt = handle.request(event).await?;
    let done = handle
        .wait(receipt.request_id, Duration::from_secs(10))
        .await?;
    println!("request: {:?}", done.state);
    for answer in &done.answers {
        println!("  [{}] {}", answer.agent, answer.payload);
    }

    // 5. What the SMTP server received.
    let mail = received.recv_timeout(Duration::from_secs(5))?;
    let (head, body) = mail.split_once("\n\n").unwrap_or((&mail, ""));
    println!("the SMTP server received:");
    for line in head
        .lines()
        .filter(|l| l.starts_with("From:") || l.starts_with("To:") || l.starts_with("Subject:"))
    {
        println!("  | {line}");
    }
    for line in body.trim_end().lines() {
        println!("  | {line}");
    }

    hub.shutdown().await;
    Ok(())
}

/// Just enough of an SMTP server to receive one mail at a time, on a thread of its own.
mod smtp_receiver {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    /// Listens on an ephemeral port; each mail received arrives on the channel.
    pub fn start() -> std::io::Result<(u16, mpsc::Receiver<String>)> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let Ok(reader) = stream.try_clone() else {
                    continue;
                };
                let (mut out, mut lines) = (stream, BufReader::new(reader).lines());
                let _ = out.write_all(b"220 localhost ESMTP\r\n");
                let (mut in_data, mut mail) = (false, String::new());
                while let Some(Ok(line)) = lines.next() {
                    let reply = if in_data {
                        if line != "." {
                            // Undo the client's dot-stuffing.
                            mail.push_str(
                                line.strip_prefix('.')
                                    .filter(|_| line.starts_with(".."))
                                    .unwrap_or(&line),
                            );
                            mail.push('\n');
                            continue;
                        }
                        in_data = false;
                        let _ = tx.send(std::mem::take(&mut mail));
                        "250 queued"
                    } else {
                        match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                            "EHLO" | "HELO" => "250 localhost",
                            "DATA" => {
                                in_data = true;
                                "354 go ahead"
                            }
                            "QUIT" => break,
                            _ => "250 ok", // MAIL, RCPT, RSET, NOOP
                        }
                    };
                    let _ = out.write_all(format!("{reply}\r\n").as_bytes());
                }
                let _ = out.write_all(b"221 bye\r\n");
            }
        });
        Ok((port, rx))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().unwrap();
    }
}
