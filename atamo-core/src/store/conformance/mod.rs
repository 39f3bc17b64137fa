//! The conformance suite every [`Store`](super::Store) backend passes, with its
//! [`DefinitionRegistry`](super::DefinitionRegistry).
//!
//! A backend's tests call [`store_conformance!`](crate::store_conformance) with an expression
//! giving an [`Open`] implementation; each case becomes its own `#[tokio::test]`:
//!
//! ```ignore
//! atamo_core::store_conformance!(crate::open_for_conformance());
//! ```
//!
//! Every case gets a fresh, empty backend on a [`ManualClock`](super::ManualClock), so lease
//! expiry, dedupe windows, result TTLs and retention are tested without sleeping. The cases
//! are grouped by area: `accept`, `leases`, `settles`, `audit`, `maintenance`, `events` and
//! `registry`; `support` opens backends and makes records.

// A test suite: a failed expectation is a failed test.
#![allow(clippy::expect_used)]

mod accept;
mod audit;
mod events;
mod leases;
mod maintenance;
mod registry;
mod settles;
mod support;

pub use accept::{
    a_dedupe_key_is_accepted_once_within_its_window, accept_writes_the_event_and_its_actions,
};
pub use audit::audit_queries_filter_and_page;
pub use events::{
    event_pages_cover_every_match_once, event_payload_filters_match_strings_numbers_and_booleans,
    events_list_newest_first_by_type_user_tenant_and_time,
};
pub use leases::{
    a_held_retry_keeps_the_lease_and_a_released_retry_waits_for_run_at,
    a_lease_is_fenced_by_its_attempt, claims_take_due_actions_oldest_first_and_raise_the_attempt,
    concurrent_claims_never_share_an_action, heartbeats_keep_leases_alive, only_the_owner_settles,
};
pub use maintenance::{
    a_fresh_store_checks_clean, prune_follows_retention_per_tenant, stats_count_by_state,
};
pub use registry::{
    concurrent_registry_writes_get_distinct_revisions, prune_keeps_the_registry,
    registry_audit_is_written_with_the_change_only,
    registry_keys_are_checked_and_listed_in_byte_order, registry_writes_follow_their_mode,
};
pub use settles::{
    dead_letters_page_newest_first_and_redrive, results_expire,
    settle_results_and_audit_commit_together,
};
pub use support::{accept_one, action, event, Open, Opened};

/// Generates one `#[tokio::test]` per conformance case, each opening its backend with `$open`.
#[macro_export]
macro_rules! store_conformance {
    ($open:expr) => {
        $crate::store_conformance!(@cases $open;
            accept_writes_the_event_and_its_actions,
            a_dedupe_key_is_accepted_once_within_its_window,
            claims_take_due_actions_oldest_first_and_raise_the_attempt,
            concurrent_claims_never_share_an_action,
            a_lease_is_fenced_by_its_attempt,
            only_the_owner_settles,
            a_held_retry_keeps_the_lease_and_a_released_retry_waits_for_run_at,
            heartbeats_keep_leases_alive,
            dead_letters_page_newest_first_and_redrive,
            settle_results_and_audit_commit_together,
            results_expire,
            audit_queries_filter_and_page,
            prune_follows_retention_per_tenant,
            stats_count_by_state,
            a_fresh_store_checks_clean,
            events_list_newest_first_by_type_user_tenant_and_time,
            event_payload_filters_match_strings_numbers_and_booleans,
            event_pages_cover_every_match_once,
            registry_writes_follow_their_mode,
            registry_audit_is_written_with_the_change_only,
            registry_keys_are_checked_and_listed_in_byte_order,
            concurrent_registry_writes_get_distinct_revisions,
            prune_keeps_the_registry,
        );
    };
    (@cases $open:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::store::conformance::$case(&$open).await;
            }
        )*
    };
}
