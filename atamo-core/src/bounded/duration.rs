//! Durations with a range, one type per kind of setting. In JSON each is a whole number of
//! milliseconds.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::error::OutOfRange;

const SECOND: u64 = 1;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// Milliseconds as a whole number, saturating (no duration here comes near `u64::MAX` ms).
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Reads a whole number of milliseconds and hands it to `check`.
struct MillisVisitor<T> {
    check: fn(u64) -> Result<T, OutOfRange>,
}

impl<T> Visitor<'_> for MillisVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number of milliseconds")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        (self.check)(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!(
                "{v} is negative; a duration is a whole number of milliseconds from 0"
            ))),
        }
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<T, E> {
        self.visit_u64(u64::try_from(v).unwrap_or(u64::MAX))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<T, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) if v > 0 => self.visit_u64(u64::MAX),
            Err(_) => Err(E::custom(format!(
                "{v} is negative; a duration is a whole number of milliseconds from 0"
            ))),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        Err(E::custom(format!(
            "{v} is not a whole number of milliseconds"
        )))
    }
}

macro_rules! bounded_duration {
    ($(#[$doc:meta])* $name:ident, min = $min:expr, max = $max:expr, default = $default:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Duration);

        impl $name {
            /// The shortest allowed.
            pub const MIN: Self = Self($min);
            /// The longest allowed.
            pub const MAX: Self = Self($max);

            /// `d`, or the error saying the range.
            pub fn new(d: Duration) -> Result<Self, OutOfRange> {
                if d < Self::MIN.0 || d > Self::MAX.0 {
                    Err(OutOfRange::duration(Self::MIN.0, Self::MAX.0))
                } else {
                    Ok(Self(d))
                }
            }

            /// `ms` milliseconds, or the error saying the range.
            pub fn from_millis(ms: u64) -> Result<Self, OutOfRange> {
                Self::new(Duration::from_millis(ms))
            }

            /// `d` brought into the range.
            pub const fn saturating(d: Duration) -> Self {
                let n = d.as_nanos();
                if n < Self::MIN.0.as_nanos() {
                    Self::MIN
                } else if n > Self::MAX.0.as_nanos() {
                    Self::MAX
                } else {
                    Self(d)
                }
            }

            /// The duration.
            pub const fn get(self) -> Duration {
                self.0
            }

            /// The duration in whole milliseconds.
            pub fn as_millis(self) -> u64 {
                millis(self.0)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::saturating($default)
            }
        }

        impl From<$name> for Duration {
            fn from(v: $name) -> Duration {
                v.0
            }
        }

        impl TryFrom<Duration> for $name {
            type Error = OutOfRange;

            fn try_from(d: Duration) -> Result<Self, OutOfRange> {
                Self::new(d)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&humantime::format_duration(self.0), f)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_u64(self.as_millis())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_u64(MillisVisitor {
                    check: Self::from_millis,
                })
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                super::schema::integer(
                    Self::MIN.as_millis(),
                    Self::MAX.as_millis(),
                    "milliseconds",
                )
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

bounded_duration! {
    /// How long a finished request's answers are kept: up to 30 days.
    KeepAlive, min = Duration::ZERO, max = Duration::from_secs(30 * DAY),
    default = Duration::from_secs(5 * MINUTE)
}

bounded_duration! {
    /// A pause between two attempts of an action: up to 24 hours.
    Backoff, min = Duration::ZERO, max = Duration::from_secs(DAY),
    default = Duration::from_millis(500)
}

bounded_duration! {
    /// How long after an action's first attempt retries may still start: up to 30 days.
    RetryWindow, min = Duration::ZERO, max = Duration::from_secs(30 * DAY),
    default = Duration::from_secs(5 * MINUTE)
}

bounded_duration! {
    /// How long a node holds an action before another may take it over: 100 ms to 1 hour.
    Lease, min = Duration::from_millis(100), max = Duration::from_secs(HOUR),
    default = Duration::from_secs(30)
}

bounded_duration! {
    /// How long a request may run before it ends as `deadline_passed`: 1 ms to 24 hours.
    Deadline, min = Duration::from_millis(1), max = Duration::from_secs(DAY),
    default = Duration::from_secs(30)
}

bounded_duration! {
    /// The longest a call or a probe may take: 1 ms to 24 hours.
    Timeout, min = Duration::from_millis(1), max = Duration::from_secs(DAY),
    default = Duration::from_secs(30)
}

bounded_duration! {
    /// How long an open circuit waits before its probe: up to 24 hours.
    CoolDown, min = Duration::ZERO, max = Duration::from_secs(DAY),
    default = Duration::from_secs(30)
}

bounded_duration! {
    /// How often something periodic runs (health probes, claims, pruning, sampling): 1 ms to
    /// 24 hours.
    Interval, min = Duration::from_millis(1), max = Duration::from_secs(DAY),
    default = Duration::from_secs(1)
}

bounded_duration! {
    /// How long a shared call's result answers identical requests: up to 24 hours.
    CacheTtl, min = Duration::ZERO, max = Duration::from_secs(DAY),
    default = Duration::ZERO
}

bounded_duration! {
    /// How long a client waits for a request's answers in one HTTP call: up to 1 hour.
    Wait, min = Duration::ZERO, max = Duration::from_secs(HOUR),
    default = Duration::from_secs(30)
}

bounded_duration! {
    /// How long in-flight work may take to finish once shutdown begins: up to 1 hour.
    Grace, min = Duration::ZERO, max = Duration::from_secs(HOUR),
    default = Duration::from_secs(10)
}

bounded_duration! {
    /// How long a dedupe key blocks a second event with the same key: up to 30 days.
    DedupeWindow, min = Duration::ZERO, max = Duration::from_secs(30 * DAY),
    default = Duration::from_secs(DAY)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_duration_has_one_range_and_one_message() {
        assert!(KeepAlive::from_millis(0).is_ok());
        assert_eq!(
            KeepAlive::from_millis(u64::MAX).unwrap_err().to_string(),
            "must be at most 30days (2592000000 ms)"
        );
        assert_eq!(
            Lease::from_millis(99).unwrap_err().to_string(),
            "must be from 100ms to 1h (100 to 3600000 ms)"
        );
        assert_eq!(Lease::saturating(Duration::ZERO), Lease::MIN);
        assert_eq!(Lease::saturating(Duration::MAX), Lease::MAX);
        assert_eq!(Interval::MAX.as_millis(), 86_400_000);
    }

    #[test]
    fn json_is_whole_milliseconds_read_through_the_constructor() {
        let b: Backoff = serde_json::from_str("250").unwrap();
        assert_eq!(b.get(), Duration::from_millis(250));
        assert_eq!(serde_json::to_string(&b).unwrap(), "250");
        for bad in ["-1", "2.5", "\"1s\"", "18446744073709551615", "1e300"] {
            let err = serde_json::from_str::<Backoff>(bad)
                .unwrap_err()
                .to_string();
            assert!(!err.is_empty(), "{bad}");
        }
        let err = serde_json::from_str::<Backoff>("18446744073709551615")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("must be at most 1day"), "{err}");
    }
}
