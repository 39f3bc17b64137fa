//! Typed identifiers.
//!
//! Names chosen by people (event types, agents, users, ...) are [`Name`]-backed newtypes: cheap to
//! clone (`Arc<str>`), compared and hashed as text. Ids the hub generates (events, actions) are
//! UUID v7, so they sort by creation time.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a text is not a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("{kind} is empty")]
    Empty {
        /// Which kind of name (`event type`, `agent id`, ...).
        kind: &'static str,
    },
    /// The name holds whitespace or a control character.
    #[error("{kind} {name:?} contains whitespace or a control character")]
    BadCharacter {
        /// Which kind of name.
        kind: &'static str,
        /// The name as given.
        name: String,
    },
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("{kind} is {len} bytes long, the limit is {MAX_NAME_LEN}")]
    TooLong {
        /// Which kind of name.
        kind: &'static str,
        /// Its length in bytes.
        len: usize,
    },
}

/// The longest name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// Checks a name: not empty, at most [`MAX_NAME_LEN`] bytes, no whitespace or control characters.
pub fn validate_name(kind: &'static str, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            kind,
            len: name.len(),
        });
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(NameError::BadCharacter {
            kind,
            name: name.to_owned(),
        });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// What this kind of name is called in error messages.
            pub const KIND: &'static str = $kind;

            /// Wraps a name without checking it; registration checks it with [`Self::validate`].
            pub fn new(name: impl AsRef<str>) -> Self {
                Self(Arc::from(name.as_ref()))
            }

            /// Parses and checks a name (see [`validate_name`]).
            pub fn parse(name: &str) -> Result<Self, NameError> {
                validate_name($kind, name)?;
                Ok(Self::new(name))
            }

            /// Checks this name (see [`validate_name`]).
            pub fn validate(&self) -> Result<(), NameError> {
                validate_name($kind, &self.0)
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::new(s)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Arc::from(s))
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                validate_name($kind, &s).map_err(serde::de::Error::custom)?;
                Ok(Self::from(s))
            }
        }
    };
}

name_type!(
    /// The type of an event, for example `order.created`.
    EventType,
    "event type"
);
name_type!(
    /// The type of an action an agent can perform, for example `email.send`.
    ActionType,
    "action type"
);
name_type!(
    /// The id an agent is registered under.
    AgentId,
    "agent id"
);
name_type!(
    /// The id of a rule.
    RuleId,
    "rule id"
);
name_type!(
    /// The id a rule provider is registered under.
    ProviderId,
    "provider id"
);
name_type!(
    /// A user on whose behalf events are published and actions run.
    UserId,
    "user id"
);
name_type!(
    /// A group of users.
    GroupId,
    "group id"
);
name_type!(
    /// A tenant: an organisation whose data is kept apart from others'.
    TenantId,
    "tenant id"
);

thread_local! {
    /// Per thread: the millisecond of the last id, and the counter used within it.
    static V7_STATE: std::cell::Cell<(u64, u128)> = const { std::cell::Cell::new((0, 0)) };
}

/// The counter occupies the 74 bits a v7 UUID leaves after timestamp, version and variant.
const V7_COUNTER_BITS: u32 = 74;

/// A UUID v7, generated without a lock or a system call.
///
/// `uuid::Uuid::now_v7` takes a process-wide mutex and asks the kernel for randomness on every
/// call, which cost more than the rest of routing an event. Here each thread starts its counter
/// at a random point (seeded from the process's random hasher keys) each millisecond, leaving
/// half the range as headroom, and counts up within the millisecond: ids from one thread sort by
/// creation, ids from different threads sort by millisecond, and 73 random bits per thread per
/// millisecond keep them apart.
fn next_v7() -> uuid::Uuid {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let (ms, counter) = V7_STATE.with(|state| {
        let (last_ms, counter) = state.get();
        let next = if now_ms > last_ms {
            (now_ms, fastrand::u128(..) >> (128 - (V7_COUNTER_BITS - 1)))
        } else if counter + 1 < (1u128 << V7_COUNTER_BITS) {
            // Same millisecond (or the clock stepped back): keep counting from the last id.
            (last_ms, counter + 1)
        } else {
            // Counter exhausted within one millisecond: borrow the next millisecond.
            (
                last_ms + 1,
                fastrand::u128(..) >> (128 - (V7_COUNTER_BITS - 1)),
            )
        };
        state.set(next);
        next
    });
    // rand_a takes the top 12 counter bits, rand_b the low 62; the builder then sets the
    // version and variant bits, which the zero high bits of each part leave room for.
    let rand_a = ((counter >> 62) & 0xFFF) as u16;
    let rand_b = (counter & ((1u128 << 62) - 1)) as u64;
    let mut bytes = [0u8; 10];
    bytes[..2].copy_from_slice(&rand_a.to_be_bytes());
    bytes[2..].copy_from_slice(&rand_b.to_be_bytes());
    uuid::Builder::from_unix_timestamp_millis(ms, &bytes).into_uuid()
}

macro_rules! uuid_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A new id (UUID v7: sortable by creation time).
            pub fn generate() -> Self {
                Self(next_v7())
            }

            /// Wraps an existing UUID.
            pub const fn from_uuid(id: uuid::Uuid) -> Self {
                Self(id)
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(Self(s.parse()?))
            }
        }
    };
}

uuid_type!(
    /// The id of one published event.
    EventId
);
uuid_type!(
    /// The id of one action (stable across its retries; the attempt number is separate).
    ActionId
);
uuid_type!(
    /// The id of a request, handed to the client at once; answers are collected under it.
    RequestId
);
uuid_type!(
    /// Ties together an event, its actions and every follow-up event they publish.
    CorrelationId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_on_parse() {
        assert!(EventType::parse("order.created").is_ok());
        assert_eq!(
            EventType::parse(""),
            Err(NameError::Empty { kind: "event type" })
        );
        assert!(matches!(
            AgentId::parse("two words"),
            Err(NameError::BadCharacter { .. })
        ));
        assert!(matches!(
            UserId::parse(&"x".repeat(MAX_NAME_LEN + 1)),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn names_round_trip_through_serde_and_reject_bad_ones() {
        let id: AgentId = serde_json::from_str("\"mailer\"").unwrap();
        assert_eq!(id.as_str(), "mailer");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"mailer\"");
        let err = serde_json::from_str::<AgentId>("\"\"").unwrap_err();
        assert!(err.to_string().contains("agent id is empty"), "{err}");
    }

    #[test]
    fn generated_ids_are_v7_unique_and_ordered_within_a_thread() {
        let ids: Vec<_> = (0..100_000).map(|_| ActionId::generate()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.iter().all(|i| i.as_uuid().get_version_num() == 7));
        assert!(ids
            .iter()
            .all(|i| i.as_uuid().get_variant() == uuid::Variant::RFC4122));
        let ms = ids[0].as_uuid().get_timestamp().unwrap().to_unix();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        assert!(now.as_secs().abs_diff(ms.0) <= 1);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| (0..10_000).map(|_| EventId::generate()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<_> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "ids from several threads collided");
    }

    #[test]
    fn generated_ids_sort_by_time() {
        let a = EventId::generate();
        let b = EventId::generate();
        assert!(a < b);
        let parsed: EventId = a.to_string().parse().unwrap();
        assert_eq!(parsed, a);
    }
}
