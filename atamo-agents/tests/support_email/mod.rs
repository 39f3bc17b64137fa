//! A small SMTP sink for the email agent's tests: it listens on 127.0.0.1, speaks enough SMTP
//! for a real client (greeting, EHLO/HELO, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA with
//! dot-unstuffing, RSET, NOOP, QUIT) and records every message it accepts.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How the sink behaves.
#[derive(Clone, Default)]
pub struct Behaviour {
    /// Offer AUTH PLAIN LOGIN and require this (user, password) before MAIL.
    pub auth: Option<(String, String)>,
    /// The reply to the first `rcpt_failures` RCPT commands (e.g. `451 4.3.0 try later`).
    pub rcpt_reply: Option<String>,
    /// How many RCPT commands get `rcpt_reply` (0 = all of them).
    pub rcpt_failures: usize,
    /// Accept connections but never greet.
    pub silent: bool,
}

/// One accepted message.
#[derive(Clone, Debug)]
pub struct Received {
    /// The envelope sender (MAIL FROM).
    pub from: String,
    /// The envelope recipients (RCPT TO).
    pub to: Vec<String>,
    /// The message as received, dot-unstuffed, without the final `.` line.
    pub data: String,
    /// The credentials the client logged in with on that connection.
    pub auth: Option<(String, String)>,
}

impl Received {
    /// The first header called `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with(' ') || line.starts_with('\t') {
                    v.push_str(line);
                    continue;
                }
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                if n.eq_ignore_ascii_case(name) {
                    value = Some(v.trim().to_owned());
                }
            }
        }
        value
    }

    /// The text of a single-part body, decoded from its transfer encoding, with `\n` line ends.
    pub fn text_body(&self) -> String {
        let (_, body) = self.data.split_once("\r\n\r\n").expect("a body");
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        decode(&encoding, body)
    }
}

/// Decodes a body in `7bit`, `8bit`, `quoted-printable` or `base64`, with `\n` line ends.
pub fn decode(encoding: &str, body: &str) -> String {
    let bytes = match encoding {
        "quoted-printable" => quoted_printable(body),
        "base64" => base64(&body.replace("\r\n", "")),
        _ => body.as_bytes().to_vec(),
    };
    String::from_utf8(bytes)
        .expect("UTF-8 text")
        .replace("\r\n", "\n")
}

fn quoted_printable(s: &str) -> Vec<u8> {
    let s = s.replace("=\r\n", "");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).expect("a QP escape"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Decodes standard base64 (padding optional).
pub fn base64(s: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let digits: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[derive(Default)]
struct State {
    messages: Vec<Received>,
    connections: usize,
    rcpt_failed: usize,
    logins: Vec<(String, String)>,
}

/// A running sink; it stops when dropped.
pub struct Sink {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    /// Starts a sink on 127.0.0.1 with an ephemeral port.
    pub async fn start(behaviour: Behaviour) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    state.lock().unwrap().connections += 1;
                    let (state, behaviour) = (state.clone(), behaviour.clone());
                    tokio::spawn(async move {
                        let _ = session(stream, &behaviour, &state).await;
                    });
                }
            })
        };
        Sink { addr, state, task }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every message accepted so far.
    pub fn messages(&self) -> Vec<Received> {
        self.state.lock().unwrap().messages.clone()
    }

    /// How many connections it has accepted.
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    /// Every login attempt (user, password), successful or not.
    pub fn logins(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().logins.clone()
    }
}

async fn session(stream: TcpStream, b: &Behaviour, state: &Mutex<State>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    if b.silent {
        let mut sink = Vec::new();
        let _ = read.read_until(0, &mut sink).await;
        return Ok(());
    }
    write.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut auth: Option<(String, String)> = None;
    loop {
        let line = read_line(&mut read).await?;
        let Some(line) = line else { return Ok(()) };
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("").to_owned();
        let reply: String = match verb.as_str() {
            "EHLO" => {
                let mut lines = vec!["sink.test greets you", "8BITMIME", "SMTPUTF8"];
                if b.auth.is_some() {
                    lines.push("AUTH PLAIN LOGIN");
                }
                lines.push("HELP");
                let n = lines.len();
                lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("250{}{l}\r\n", if i + 1 == n { ' ' } else { '-' }))
                    .collect()
            }
            "HELO" => "250 sink.test\r\n".into(),
            "AUTH" => {
                let parts: Vec<&str> = line.split_whitespace().collect();
                let mechanism = parts.get(1).map(|m| m.to_ascii_uppercase());
                let creds = match mechanism.as_deref() {
                    Some("PLAIN") => {
                        let initial = match parts.get(2) {
                            Some(i) => i.to_string(),
                            None => {
                                write.write_all(b"334 \r\n").await?;
                                read_line(&mut read).await?.unwrap_or_default()
                            }
                        };
                        let decoded = String::from_utf8(base64(&initial)).unwrap();
                        let mut fields = decoded.split('\0').skip(1);
                        Some((
                            fields.next().unwrap_or("").to_owned(),
                            fields.next().unwrap_or("").to_owned(),
                        ))
                    }
                    Some("LOGIN") => {
                        let user = match parts.get(2) {
                            Some(u) => u.to_string(),
                            None => {
                                write.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
                                read_line(&mut read).await?.unwrap_or_default()
                            }
                        };
                        write.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
                        let pass = read_line(&mut read).await?.unwrap_or_default();
                        Some((
                            String::from_utf8(base64(&user)).unwrap(),
                            String::from_utf8(base64(&pass)).unwrap(),
                        ))
                    }
                    _ => None,
                };
                match creds {
                    None => "504 5.5.4 mechanism not supported\r\n".into(),
                    Some(creds) => {
                        state.lock().unwrap().logins.push(creds.clone());
                        if b.auth.as_ref() == Some(&creds) {
                            auth = Some(creds);
                            "235 2.7.0 authenticated\r\n".into()
                        } else {
                            "535 5.7.8 authentication credentials invalid\r\n".into()
                        }
                    }
                }
            }
            "MAIL" if b.auth.is_some() && auth.is_none() => {
                "530 5.7.0 authentication required\r\n".into()
            }
            "MAIL" => {
                from = Some(angle(&line));
                to.clear();
                "250 2.1.0 sender ok\r\n".into()
            }
            "RCPT" if from.is_none() => "503 5.5.1 MAIL first\r\n".into(),
            "RCPT" => {
                let fail = match &b.rcpt_reply {
                    Some(reply) => {
                        let mut s = state.lock().unwrap();
                        let fail = b.rcpt_failures == 0 || s.rcpt_failed < b.rcpt_failures;
                        if fail {
                            s.rcpt_failed += 1;
                        }
                        fail.then(|| format!("{reply}\r\n"))
                    }
                    None => None,
                };
                match fail {
                    Some(reply) => reply,
                    None => {
                        to.push(angle(&line));
                        "250 2.1.5 recipient ok\r\n".into()
                    }
                }
            }
            "DATA" if to.is_empty() => "503 5.5.1 RCPT first\r\n".into(),
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = Vec::new();
                loop {
                    let mut raw = Vec::new();
                    if read.read_until(b'\n', &mut raw).await? == 0 {
                        return Ok(());
                    }
                    if raw == b".\r\n" {
                        break;
                    }
                    // Dot-unstuffing: a line the client began with an extra dot.
                    if raw.starts_with(b"..") {
                        raw.remove(0);
                    }
                    data.extend_from_slice(&raw);
                }
                let mut s = state.lock().unwrap();
                s.messages.push(Received {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data: String::from_utf8(data).expect("a UTF-8 message"),
                    auth: auth.clone(),
                });
                format!("250 2.0.0 queued as {}\r\n", s.messages.len())
            }
            "RSET" => {
                from = None;
                to.clear();
                "250 2.0.0 reset\r\n".into()
            }
            "NOOP" => "250 2.0.0 ok\r\n".into(),
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 command not recognised\r\n".into(),
        };
        write.write_all(reply.as_bytes()).await?;
    }
}

/// One command line without its CRLF; `None` at end of stream.
async fn read_line(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<Option<String>> {
    let mut raw = Vec::new();
    if read.read_until(b'\n', &mut raw).await? == 0 {
        return Ok(None);
    }
    let line = String::from_utf8_lossy(&raw);
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

/// The address between `<` and `>` in `MAIL FROM:<a@b> ...` or `RCPT TO:<a@b>`.
fn angle(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| start + i);
    line[start..end].to_owned()
}
