//! The dedupe decisions of a group, made in the order of its accepts.

use std::collections::HashMap;

use atamo_core::ids::{CorrelationId, EventId};
use atamo_core::message::Timestamp;
use atamo_core::store::{later, AcceptEvent, AcceptOutcome, EventRecord};

/// `''` for events without a tenant, in the dedupe table's key.
fn tenant_key(e: &EventRecord) -> &str {
    e.principal.tenant.as_ref().map_or("", |t| t.as_str())
}

/// The dedupe decisions of a group, made in the order of its accepts.
pub(super) struct Dedupe<'a> {
    /// The distinct keys, sorted (so concurrent writers lock them in the same order).
    pub(super) keys: Vec<(&'a str, &'a str)>,
    /// Per key, assuming its first event in the group is new: each accept's outcome and the
    /// holder written at the end.
    pub(super) chains: Vec<Chain>,
}

pub(super) struct Chain {
    /// (accept index, outcome) for every accept with this key.
    pub(super) outcomes: Vec<(usize, AcceptOutcome)>,
    /// The holder stored once the group is written.
    pub(super) holder: (EventId, CorrelationId, Timestamp),
}

pub(super) fn plan_dedupe<'a>(accepts: &[&'a AcceptEvent], now: Timestamp) -> Dedupe<'a> {
    let mut index: HashMap<(&'a str, &'a str), usize> = HashMap::new();
    let mut keys: Vec<(&'a str, &'a str)> = Vec::new();
    let mut key_of = Vec::with_capacity(accepts.len());
    for a in accepts {
        key_of.push(a.event.dedupe_key.as_deref().map(|key| {
            let k = (tenant_key(&a.event), key);
            *index.entry(k).or_insert_with(|| {
                keys.push(k);
                keys.len() - 1
            })
        }));
    }
    // Sort the keys and renumber.
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&x, &y| keys[x].cmp(&keys[y]));
    let mut renumber = vec![0; keys.len()];
    for (new, &old) in order.iter().enumerate() {
        renumber[old] = new;
    }
    let keys: Vec<(&str, &str)> = order.iter().map(|&old| keys[old]).collect();
    let key_of: Vec<Option<usize>> = key_of
        .into_iter()
        .map(|k| k.map(|old| renumber[old]))
        .collect();
    let mut chains: Vec<Option<Chain>> = keys.iter().map(|_| None).collect();
    for (i, a) in accepts.iter().enumerate() {
        let Some(k) = key_of[i] else { continue };
        let mine = (
            a.event.id,
            a.event.correlation_id,
            later(now, a.dedupe_window),
        );
        match &mut chains[k] {
            None => {
                chains[k] = Some(Chain {
                    outcomes: vec![(i, AcceptOutcome::New)],
                    holder: mine,
                });
            }
            Some(chain) => {
                // As the in-memory store: a holder still inside its window makes this a
                // duplicate; otherwise this event takes the key over.
                if chain.holder.2 > now {
                    chain.outcomes.push((
                        i,
                        AcceptOutcome::Duplicate {
                            event_id: chain.holder.0,
                            correlation_id: chain.holder.1,
                        },
                    ));
                } else {
                    chain.outcomes.push((i, AcceptOutcome::New));
                    chain.holder = mine;
                }
            }
        }
    }
    Dedupe {
        keys,
        chains: chains.into_iter().flatten().collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use atamo_core::store::conformance::event;

    use super::*;

    fn keyed(key: &str, window: u64, now: Timestamp) -> AcceptEvent {
        let mut e = event("alice", None, now);
        e.dedupe_key = Some(key.to_owned());
        AcceptEvent {
            event: e,
            dedupe_window: Duration::from_secs(window),
            actions: vec![],
        }
    }

    #[test]
    fn dedupe_chains_follow_the_windows_in_order() {
        let now = Timestamp::from_unix_micros(1_000_000);
        let a = keyed("k", 60, now);
        let b = keyed("k", 60, now);
        let c = keyed("j", 0, now);
        let d = keyed("j", 60, now);
        let e = keyed("j", 60, now);
        let all = [&a, &b, &c, &d, &e];
        let plan = plan_dedupe(&all, now);
        assert_eq!(plan.keys, vec![("", "j"), ("", "k")]);
        let j = &plan.chains[0];
        assert_eq!(
            j.outcomes,
            vec![
                (2, AcceptOutcome::New),
                // A window of 0 blocks nothing.
                (3, AcceptOutcome::New),
                (
                    4,
                    AcceptOutcome::Duplicate {
                        event_id: d.event.id,
                        correlation_id: d.event.correlation_id
                    }
                ),
            ]
        );
        assert_eq!(j.holder.0, d.event.id);
        let k = &plan.chains[1];
        assert_eq!(k.holder.0, a.event.id);
    }
}
