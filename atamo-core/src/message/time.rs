use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in wall-clock time with microsecond precision, shown and serialized as RFC 3339.
///
/// It lies between the Unix epoch and [`Timestamp::MAX`], the last microsecond of the year
/// 9999 (the last one RFC 3339 can write): every constructor and [`later`](crate::store::later)
/// saturate there, so a timestamp always formats and always serializes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Self = Self(0);
    /// The last microsecond RFC 3339 can write: 9999-12-31T23:59:59.999999Z.
    pub const MAX: Self = Self(253_402_300_799_999_999);

    /// Now.
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// From a `SystemTime` (times before 1970 become 1970, times after [`Timestamp::MAX`]
    /// become it).
    pub fn from_system_time(t: SystemTime) -> Self {
        let micros = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        Self::from_unix_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// From microseconds since the Unix epoch (past [`Timestamp::MAX`]: it).
    pub const fn from_unix_micros(micros: u64) -> Self {
        if micros > Self::MAX.0 {
            Self::MAX
        } else {
            Self(micros)
        }
    }

    /// Microseconds since the Unix epoch.
    pub const fn unix_micros(self) -> u64 {
        self.0
    }

    /// As a `SystemTime`.
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.0)
    }

    /// How long after `earlier` this is (zero if it is not later).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// `d` after this, saturating at [`Timestamp::MAX`].
    pub fn saturating_add(self, d: Duration) -> Self {
        let d = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Self::from_unix_micros(self.0.saturating_add(d))
    }

    /// `d` before this, saturating at the epoch.
    pub fn saturating_sub(self, d: Duration) -> Self {
        let d = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Self(self.0.saturating_sub(d))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&humantime::format_rfc3339_micros(self.to_system_time()), f)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_rfc3339(&s)
            .map(Self::from_system_time)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_rfc3339() {
        let t = Timestamp::from_unix_micros(1_700_000_000_123_456);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2023-11-14T22:13:20.123456Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert_eq!(
            Timestamp::from_unix_micros(10).since(Timestamp::from_unix_micros(4)),
            Duration::from_micros(6)
        );
    }

    #[test]
    fn every_timestamp_formats_and_serializes() {
        let far = Timestamp::now().saturating_add(Duration::from_millis(1_000_000_000_000_000));
        assert_eq!(far, Timestamp::MAX);
        assert_eq!(
            serde_json::to_string(&far).unwrap(),
            "\"9999-12-31T23:59:59.999999Z\""
        );
        assert_eq!(Timestamp::from_unix_micros(u64::MAX), Timestamp::MAX);
        assert_eq!(Timestamp::MAX.saturating_add(Duration::MAX), Timestamp::MAX);
        assert_eq!(
            Timestamp::from_unix_micros(5).saturating_sub(Duration::MAX),
            Timestamp::EPOCH
        );
        let back: Timestamp = serde_json::from_str("\"9999-12-31T23:59:59.999999Z\"").unwrap();
        assert_eq!(back, Timestamp::MAX);
    }
}
