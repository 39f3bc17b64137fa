//! Values written the same way in the file and in the environment: durations, byte sizes,
//! socket addresses, paths, names.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A humantime duration: `"250ms"`, `"5m"`, `"1h 30m"`, `"30d"`.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("`{text}` is not a duration ({e}); write for example \"250ms\", \"5m\" or \"30d\"")
    })
}

/// A size in bytes: `1048576`, `"512KiB"`, `"1MiB"`, `"2 MB"`.
///
/// Parsed by hand: one integer and one unit is all the file needs, and no dependency of this
/// crate reads sizes.
pub(super) fn parse_bytes(text: &str) -> Result<usize, String> {
    let bad = || {
        format!(
            "`{text}` is not a size; write a number of bytes, or a whole number with a unit: \
             B, KiB, MiB, GiB (1024) or KB, MB, GB (1000)"
        )
    };
    let text_trimmed = text.trim();
    let split = text_trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text_trimmed.len());
    let (digits, unit) = text_trimmed.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(factor)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// The largest body limit: 64 MiB.
pub(crate) const MAX_BODY_LIMIT: usize = 64 << 20;

/// A body limit: 1 byte to [`MAX_BODY_LIMIT`].
pub(super) fn check_body_limit(n: usize) -> Result<usize, String> {
    if (1..=MAX_BODY_LIMIT).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "must be from 1 byte to 64MiB ({MAX_BODY_LIMIT} bytes)"
        ))
    }
}

/// An IP address and a port.
pub(super) fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "`{text}` is not a socket address; write an IP address and a port, for example \
             \"127.0.0.1:7700\" or \"[::]:7700\""
        )
    })
}

/// A path that is not empty.
pub(super) fn parse_path(text: &str) -> Result<PathBuf, String> {
    if text.trim().is_empty() {
        Err("the path is empty".to_owned())
    } else {
        Ok(PathBuf::from(text))
    }
}

/// A PostgreSQL schema name, checked as the PostgreSQL store checks it when it connects.
pub(super) fn check_schema(name: &str) -> Result<(), String> {
    atamo_store_postgres::validate_schema(name).map_err(|e| match e {
        atamo_core::store::StoreError::Invalid { message, .. } => message,
        other => other.to_string(),
    })
}

/// A PostgreSQL connection string, checked without connecting.
pub(super) fn check_postgres_url(url: &str) -> Result<(), String> {
    url.parse::<tokio_postgres::Config>()
        .map(drop)
        .map_err(|e| format!("not a PostgreSQL connection string: {e}"))
}

/// A node name: not empty, at most 256 bytes, no whitespace or control characters.
pub(super) fn check_node(name: &str) -> Result<(), String> {
    atamo_core::ids::validate_name("node name", name).map_err(|e| e.to_string())
}

/// Reads a string with `parse`, naming what is expected when the value is of another type.
struct StrVisitor<T> {
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
}

impl<T> Visitor<'_> for StrVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.parse)(v).map_err(E::custom)
    }
}

/// A duration in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor {
            expecting: "a duration such as \"250ms\", \"5m\" or \"30d\"",
            parse: |s| parse_duration(s).map(Dur),
        })
    }
}

/// A socket address in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Addr(pub SocketAddr);

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor {
            expecting: "a socket address such as \"127.0.0.1:7700\"",
            parse: |s| parse_addr(s).map(Addr),
        })
    }
}

/// A path in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FilePath(pub PathBuf);

impl<'de> Deserialize<'de> for FilePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor {
            expecting: "a path",
            parse: |s| parse_path(s).map(FilePath),
        })
    }
}

/// A size in bytes in the file: an integer, or a string with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Bytes(pub usize);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bytes;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of bytes, or a size such as \"512KiB\" or \"1MiB\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
                parse_bytes(v).map(Bytes).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bytes, E> {
                usize::try_from(v)
                    .map(Bytes)
                    .map_err(|_| E::custom(format!("{v} bytes is too large")))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bytes, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("{v} is negative")))
                    .and_then(|v| self.visit_u64(v))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_are_humantime() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86400)
        );
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        let err = parse_duration("5 parsecs").unwrap_err();
        assert!(err.contains("`5 parsecs` is not a duration"), "{err}");
        assert!(parse_duration("10").is_err());
    }

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!(parse_bytes("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("512KiB").unwrap(), 512 * 1024);
        assert_eq!(parse_bytes("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("2 mb").unwrap(), 2_000_000);
        assert_eq!(parse_bytes("3GiB").unwrap(), 3 << 30);
        assert_eq!(parse_bytes("7B").unwrap(), 7);
        for bad in [
            "",
            "MiB",
            "1.5MiB",
            "1 parsec",
            "-1",
            "99999999999999999999",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert!(parse_bytes("18446744073709551615GiB")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn addresses_paths_schemas_urls_and_nodes() {
        assert_eq!(
            parse_addr("0.0.0.0:80").unwrap(),
            "0.0.0.0:80".parse::<SocketAddr>().unwrap()
        );
        assert!(parse_addr("[::1]:7700").is_ok());
        assert!(parse_addr("localhost:7700").is_err());
        assert!(parse_addr("127.0.0.1").is_err());
        assert!(parse_path(" ").is_err());
        assert!(check_schema("atamo_2").is_ok());
        for bad in ["", "Atamo", "pg_x", "2a", "a-b"] {
            assert!(check_schema(bad).is_err(), "{bad}");
        }
        assert!(check_postgres_url("postgres://u:p@127.0.0.1:5432/db").is_ok());
        assert!(check_postgres_url("host=127.0.0.1 user=u").is_ok());
        assert!(check_postgres_url("postgres://u@h/db?sslmode=bogus").is_err());
        assert!(check_node("node-a").is_ok());
        assert!(check_node("node a").is_err());
    }
}
