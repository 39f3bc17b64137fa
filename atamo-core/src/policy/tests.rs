#![allow(clippy::unwrap_used)]

use std::time::Duration;

use proptest::prelude::*;

use super::*;

#[test]
fn backoff_grows_and_is_capped() {
    let p = RetryPolicy::attempts(10)
        .backoff(Duration::from_millis(100), Duration::from_secs(1))
        .jitter(0.0);
    let delays: Vec<u128> = (2..=7).map(|n| p.delay_before(n).as_millis()).collect();
    assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
    let j = RetryPolicy::default();
    for _ in 0..100 {
        let d = j.delay_before(2).as_millis();
        assert!((400..=600).contains(&d), "{d}");
    }
}

#[test]
fn the_default_rides_out_a_short_outage() {
    let p = RetryPolicy::default();
    assert_eq!(p.max_attempts.get(), 8);
    assert_eq!(
        p.max_elapsed.map(|w| w.get()),
        Some(Duration::from_secs(300))
    );
    // The retries' pauses, at their shortest (all jitter down): more than 45 s in all.
    let shortest: Duration = (2..=8)
        .map(|n| p.jitter(0.0).delay_before(n).mul_f64(1.0 - p.jitter.get()))
        .sum();
    assert!(shortest > Duration::from_secs(45), "{shortest:?}");
    assert_eq!(RetryPolicy::none().max_attempts.get(), 1);
}

#[test]
fn json_reads_through_the_constructors_and_names_the_part() {
    let p: RetryPolicy = serde_json::from_str(r#"{"max_attempts": 3}"#).unwrap();
    assert_eq!(p, RetryPolicy::attempts(3));
    let json = serde_json::to_value(p).unwrap();
    assert_eq!(json["initial_backoff_ms"], 500);
    assert_eq!(serde_json::from_value::<RetryPolicy>(json).unwrap(), p);
    let none: RetryPolicy = serde_json::from_str(r#"{"max_elapsed_ms": null}"#).unwrap();
    assert_eq!(none.max_elapsed, None);
    for (body, says) in [
        (r#"{"jitter": 1e300}"#, "must be from 0.0 to 1.0"),
        (
            r#"{"initial_backoff_ms": 18446744073709551615}"#,
            "must be at most 1day",
        ),
        (
            r#"{"max_backoff_ms": 18446744073709551615}"#,
            "must be at most 1day",
        ),
        (r#"{"max_attempts": 0}"#, "must be from 1 to 100"),
        (r#"{"multiplier": 0.5}"#, "must be from 1.0 to 10.0"),
        (
            r#"{"initial_backoff_ms": 2000, "max_backoff_ms": 1000}"#,
            "must not be shorter",
        ),
        (r#"{"colour": 1}"#, "unknown field `colour`"),
    ] {
        let err = serde_json::from_str::<RetryPolicy>(body)
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{body}: {err}");
    }
}

#[test]
fn builders_bring_values_into_range() {
    let p = RetryPolicy::attempts(0)
        .backoff(Duration::MAX, Duration::ZERO)
        .jitter(1e300)
        .multiplier(f64::INFINITY)
        .max_elapsed(Duration::MAX);
    assert_eq!(p.max_attempts, Attempts::MIN);
    assert_eq!(p.initial_backoff, Backoff::MAX);
    assert_eq!(p.max_backoff, Backoff::MAX);
    assert_eq!(p.jitter, Jitter::MAX);
    assert_eq!(p.multiplier, Multiplier::MAX);
    assert!(p.check().is_ok());
    assert!(p.delay_before(u32::MAX) <= Backoff::MAX.get());
}

fn any_policy() -> impl Strategy<Value = RetryPolicy> {
    (
        1..=100u64,
        0..=Backoff::MAX.as_millis(),
        0..=Backoff::MAX.as_millis(),
        Multiplier::MIN.get()..=Multiplier::MAX.get(),
        Jitter::MIN.get()..=Jitter::MAX.get(),
        proptest::option::of(0..=RetryWindow::MAX.as_millis()),
    )
        .prop_map(|(attempts, initial, max, multiplier, jitter, elapsed)| {
            let mut p = RetryPolicy::attempts(attempts as u32)
                .backoff(Duration::from_millis(initial), Duration::from_millis(max))
                .multiplier(multiplier)
                .jitter(jitter);
            p.max_elapsed = elapsed.map(|ms| RetryWindow::from_millis(ms).unwrap());
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever a policy holds, the pause before any attempt is a duration no longer than the
    /// longest backoff there is: no panic, no overflow.
    #[test]
    fn delay_before_never_panics(p in any_policy(), next in any::<u32>()) {
        let d = p.delay_before(next);
        prop_assert!(d <= Backoff::MAX.get());
        let json = serde_json::to_string(&p).unwrap();
        let back = serde_json::from_str::<RetryPolicy>(&json).unwrap();
        prop_assert_eq!(back.max_attempts, p.max_attempts);
        prop_assert_eq!((back.initial_backoff, back.max_backoff), (p.initial_backoff, p.max_backoff));
        prop_assert_eq!(back.max_elapsed, p.max_elapsed);
        prop_assert!((back.multiplier.get() - p.multiplier.get()).abs() < 1e-9);
        prop_assert!((back.jitter.get() - p.jitter.get()).abs() < 1e-9);
    }

    /// Any JSON numbers for the parts are either refused or make a policy that works.
    #[test]
    fn any_json_numbers_are_refused_or_work(
        attempts in any::<i64>(),
        initial in any::<u64>(),
        max in any::<u64>(),
        multiplier in any::<f64>().prop_filter("JSON has no NaN or infinity", |x| x.is_finite()),
        jitter in any::<f64>().prop_filter("JSON has no NaN or infinity", |x| x.is_finite()),
    ) {
        let body = serde_json::json!({
            "max_attempts": attempts, "initial_backoff_ms": initial, "max_backoff_ms": max,
            "multiplier": multiplier, "jitter": jitter,
        });
        if let Ok(p) = serde_json::from_value::<RetryPolicy>(body) {
            prop_assert!(p.delay_before(u32::MAX) <= Backoff::MAX.get());
            prop_assert!(p.check().is_ok());
        }
    }
}
