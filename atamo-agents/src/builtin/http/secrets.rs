//! The user's credential on a request, and keeping it out of errors, answers and logs.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::builtin::credentials::Credential;

/// Replaces every secret the call uses with `***` in text headed for errors, answers or logs.
pub(super) struct Scrubber(pub(super) Vec<String>);

impl Scrubber {
    pub(super) fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.0 {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }

    pub(super) fn value(&self, value: Value) -> Value {
        if self.0.is_empty() {
            return value;
        }
        match value {
            Value::String(s) => Value::String(self.text(&s)),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (self.text(&k), self.value(v)))
                    .collect(),
            ),
            other => other,
        }
    }
}

/// Sets the credential's header; returns what must never be shown.
pub(super) fn apply_credential(
    headers: &mut HeaderMap,
    credential: &Credential,
) -> Result<Scrubber, String> {
    let sensitive = |text: &str| {
        HeaderValue::from_str(text)
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
            .map_err(|_| "does not make a valid header value".to_owned())
    };
    let mut secrets = Vec::new();
    match credential {
        Credential::Token(token) => {
            secrets.push(token.expose().to_owned());
            headers.insert(
                reqwest::header::AUTHORIZATION,
                sensitive(&format!("Bearer {}", token.expose()))?,
            );
        }
        Credential::Password { user, password } => {
            let encoded = base64(format!("{user}:{}", password.expose()).as_bytes());
            secrets.push(password.expose().to_owned());
            secrets.push(encoded.clone());
            headers.insert(
                reqwest::header::AUTHORIZATION,
                sensitive(&format!("Basic {encoded}"))?,
            );
        }
        Credential::ApiKey { header, key } => {
            let name = HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| format!("names an invalid header {header:?}"))?;
            secrets.push(key.expose().to_owned());
            headers.insert(name, sensitive(key.expose())?);
        }
    }
    secrets.retain(|s| !s.is_empty());
    Ok(Scrubber(secrets))
}

/// Standard base64 with padding (basic auth).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
