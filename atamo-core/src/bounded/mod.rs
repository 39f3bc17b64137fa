//! Values with a range: every duration, fraction, count and size a setting takes, whether it
//! comes from the Rust builders, `atamo.toml`, the environment or the REST API.
//!
//! Each type has one checked constructor (`new`) with one error message, which serde uses when
//! it reads the value (so a bad value is an error naming its field), and a `saturating`
//! constructor that clamps, for the builders that take plain numbers. A value of these types
//! is always in its range: the arithmetic the hub does with it (backoff, leases, keep-alive,
//! deadlines) cannot overflow.
//!
//! ```
//! use std::time::Duration;
//! use atamo_core::bounded::{Backoff, Jitter, KeepAlive};
//!
//! assert_eq!(KeepAlive::from_millis(1_000).unwrap().get(), Duration::from_secs(1));
//! let err = KeepAlive::from_millis(1_000_000_000_000_000).unwrap_err();
//! assert_eq!(err.to_string(), "must be at most 30days (2592000000 ms)");
//! assert!(Jitter::new(1e300).is_err());
//! assert_eq!(Backoff::saturating(Duration::MAX), Backoff::MAX);
//! ```
//!
//! In JSON a duration is a whole number of milliseconds (the fields end in `_ms`); in
//! `atamo.toml` the same setting is written as a humantime string and checked by the same
//! constructor.

mod duration;
mod error;
mod number;
#[cfg(feature = "openapi")]
mod schema;

pub use duration::{
    Backoff, CacheTtl, CoolDown, Deadline, DedupeWindow, Grace, Interval, KeepAlive, Lease,
    RetryWindow, Timeout, Wait,
};
pub use error::OutOfRange;
pub use number::{Attempts, Concurrency, Jitter, Multiplier, QueueCapacity};
