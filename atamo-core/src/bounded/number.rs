//! Counts and fractions with a range: attempts, jitter, multiplier, concurrency, queue sizes.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::error::OutOfRange;

/// Reads a whole number and hands it to `check`.
struct CountVisitor<T> {
    check: fn(u64) -> Result<T, OutOfRange>,
}

impl<T> Visitor<'_> for CountVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        (self.check)(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        // A negative number is below every range here.
        (self.check)(u64::try_from(v).unwrap_or(0)).map_err(E::custom)
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<T, E> {
        self.visit_u64(u64::try_from(v).unwrap_or(u64::MAX))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<T, E> {
        let v = if v < 0 {
            0
        } else {
            u64::try_from(v).unwrap_or(u64::MAX)
        };
        self.visit_u64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        Err(E::custom(format!("{v} is not a whole number")))
    }
}

macro_rules! bounded_count {
    ($(#[$doc:meta])* $name:ident($int:ty), min = $min:expr, max = $max:expr, default = $default:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name($int);

        impl $name {
            /// The least allowed.
            pub const MIN: Self = Self($min);
            /// The most allowed.
            pub const MAX: Self = Self($max);

            /// `n`, or the error saying the range.
            pub fn new(n: u64) -> Result<Self, OutOfRange> {
                match <$int>::try_from(n) {
                    Ok(v) if (Self::MIN.0..=Self::MAX.0).contains(&v) => Ok(Self(v)),
                    _ => Err(OutOfRange::new(format!(
                        "must be from {} to {}",
                        Self::MIN.0,
                        Self::MAX.0
                    ))),
                }
            }

            /// `n` brought into the range.
            pub const fn saturating(n: $int) -> Self {
                if n < Self::MIN.0 {
                    Self::MIN
                } else if n > Self::MAX.0 {
                    Self::MAX
                } else {
                    Self(n)
                }
            }

            /// The number.
            pub const fn get(self) -> $int {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::saturating($default)
            }
        }

        impl From<$name> for $int {
            fn from(v: $name) -> $int {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_u64(self.0 as u64)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_u64(CountVisitor { check: Self::new })
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                super::schema::integer(Self::MIN.0 as u64, Self::MAX.0 as u64, "a count")
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

bounded_count! {
    /// Attempts of an action in all, the first included: 1 (no retry) to 100.
    Attempts(u32), min = 1, max = 100, default = 8
}

bounded_count! {
    /// How many calls of one agent may run at once: 1 to 10,000.
    Concurrency(usize), min = 1, max = 10_000, default = 64
}

bounded_count! {
    /// How many dispatched actions may wait for one agent: 1 to 1,000,000.
    QueueCapacity(usize), min = 1, max = 1_000_000, default = 4096
}

macro_rules! bounded_fraction {
    ($(#[$doc:meta])* $name:ident, min = $min:expr, max = $max:expr, default = $default:expr, what = $what:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
        pub struct $name(f64);

        impl $name {
            /// The least allowed.
            pub const MIN: Self = Self($min);
            /// The most allowed.
            pub const MAX: Self = Self($max);

            /// `x`, or the error saying the range (NaN is outside every range).
            pub fn new(x: f64) -> Result<Self, OutOfRange> {
                if (Self::MIN.0..=Self::MAX.0).contains(&x) {
                    Ok(Self(x))
                } else {
                    Err(OutOfRange::new(format!(
                        "must be from {:?} to {:?}",
                        Self::MIN.0,
                        Self::MAX.0
                    )))
                }
            }

            /// `x` brought into the range (NaN becomes the default).
            pub fn saturating(x: f64) -> Self {
                if x.is_nan() {
                    Self::default()
                } else {
                    Self(x.clamp(Self::MIN.0, Self::MAX.0))
                }
            }

            /// The number.
            pub const fn get(self) -> f64 {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self($default)
            }
        }

        impl From<$name> for f64 {
            fn from(v: $name) -> f64 {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_f64(self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::new(f64::deserialize(d)?).map_err(de::Error::custom)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                super::schema::number(Self::MIN.0, Self::MAX.0, $what)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

bounded_fraction! {
    /// How much each pause between attempts varies at random, as a fraction from 0.0 (none)
    /// to 1.0 (anywhere from no pause to twice the pause).
    Jitter, min = 0.0, max = 1.0, default = 0.2, what = "a fraction"
}

bounded_fraction! {
    /// How much longer each pause between attempts is than the one before: 1.0 (always the
    /// same) to 10.0.
    Multiplier, min = 1.0, max = 10.0, default = 2.0, what = "a factor"
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn counts_and_fractions_keep_to_their_ranges() {
        assert_eq!(
            Attempts::new(0).unwrap_err().to_string(),
            "must be from 1 to 100"
        );
        assert_eq!(
            Attempts::new(u64::MAX).unwrap_err().to_string(),
            "must be from 1 to 100"
        );
        assert_eq!(Attempts::saturating(0), Attempts::MIN);
        assert_eq!(
            Jitter::new(1e300).unwrap_err().to_string(),
            "must be from 0.0 to 1.0"
        );
        assert!(Jitter::new(f64::NAN).is_err());
        assert_eq!(Jitter::saturating(f64::NAN), Jitter::default());
        assert_eq!(Multiplier::saturating(0.5), Multiplier::MIN);
        assert!(serde_json::from_str::<Attempts>("3.0").is_err());
        assert!(serde_json::from_str::<Attempts>("-3").is_err());
        assert_eq!(serde_json::from_str::<Attempts>("3").unwrap().get(), 3);
        assert_eq!(serde_json::from_str::<Jitter>("1").unwrap().get(), 1.0);
        assert!(serde_json::from_str::<Jitter>("1e300").is_err());
    }
}
