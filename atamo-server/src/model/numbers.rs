//! Integers a JSON body writes that no 64-bit integer holds.
//!
//! serde_json reads an integer above `u64::MAX` (or below `i64::MIN`) as the nearest float,
//! silently: `18446744073709551616` would be stored as `1.8446744073709552e19`. A body is
//! scanned once for such integers (only when it holds a run of 19 digits or more, the
//! shortest that can overflow), and each is refused at its field.

/// The refusal of an integer out of range.
pub(super) const MESSAGE: &str = "is an integer outside the exact range of 64-bit integers \
     (-9223372036854775808 to 18446744073709551615); send it as a string";

/// Where in the document the scanner is.
enum Frame {
    /// In an object: the key of the member being read.
    Object(Option<String>),
    /// In an array: the index of the element being read.
    Array(usize),
}

/// The fields of `text` (valid JSON) holding an integer no `i64` or `u64` holds, each named
/// as a path (`payload.order.total`, `events[2].payload.n`), prefixed with `prefix`.
pub(super) fn out_of_range(text: &[u8], prefix: &str) -> Vec<String> {
    if !has_long_digit_run(text) {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'{' => {
                stack.push(Frame::Object(None));
                i += 1;
            }
            b'[' => {
                stack.push(Frame::Array(0));
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                i += 1;
            }
            b',' => {
                match stack.last_mut() {
                    Some(Frame::Array(n)) => *n += 1,
                    Some(Frame::Object(key)) => *key = None,
                    None => {}
                }
                i += 1;
            }
            b'"' => {
                let end = string_end(text, i);
                // A string where an object expects a key is the key.
                if let Some(Frame::Object(key @ None)) = stack.last_mut() {
                    *key =
                        Some(serde_json::from_slice::<String>(&text[i..end]).unwrap_or_default());
                }
                i = end;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < text.len()
                    && matches!(text[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let token = std::str::from_utf8(&text[start..i]).unwrap_or("");
                if is_unrepresentable_integer(token) {
                    found.push(path(prefix, &stack));
                }
            }
            _ => i += 1,
        }
    }
    found
}

/// Whether `text` holds 19 digits in a row anywhere (cheap; most bodies do not).
fn has_long_digit_run(text: &[u8]) -> bool {
    let mut run = 0;
    for &b in text {
        if b.is_ascii_digit() {
            run += 1;
            if run >= 19 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// The index just past the string starting at `start` (a `"`).
fn string_end(text: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    text.len()
}

/// An integer token (no fraction, no exponent) that neither `i64` nor `u64` holds.
fn is_unrepresentable_integer(token: &str) -> bool {
    if token.contains(['.', 'e', 'E']) {
        return false;
    }
    token.parse::<i64>().is_err() && token.parse::<u64>().is_err()
}

/// The path of the value being read: `a.b[2].c`.
fn path(prefix: &str, stack: &[Frame]) -> String {
    let mut out = prefix.trim_end_matches('.').to_owned();
    for frame in stack {
        match frame {
            Frame::Object(Some(key)) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Frame::Object(None) => {}
            Frame::Array(n) => out.push_str(&format!("[{n}]")),
        }
    }
    if out.is_empty() {
        "body".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_past_64_bits_are_found_at_their_field() {
        let body = br#"{"payload": {"ok": 18446744073709551615, "big": 18446744073709551616,
            "neg": -9223372036854775809, "f": 1e400, "x": 1.5, "s": "18446744073709551616",
            "list": [1, 99999999999999999999999]}, "k\"ey": 123456789012345678901}"#;
        assert_eq!(
            out_of_range(body, ""),
            ["payload.big", "payload.neg", "payload.list[1]", "k\"ey"]
        );
        assert!(out_of_range(br#"{"n": 9223372036854775807}"#, "").is_empty());
        assert_eq!(out_of_range(b"18446744073709551616", ""), ["body"]);
        assert_eq!(
            out_of_range(br#"[{"n": 18446744073709551616}]"#, "events"),
            ["events[0].n"]
        );
    }
}
