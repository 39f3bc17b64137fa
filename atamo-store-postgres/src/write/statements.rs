//! The statements of a write transaction.

pub(super) const BEGIN: &str = "BEGIN";
pub(super) const COMMIT: &str = "COMMIT";

pub(super) const DEDUPE_CLAIM: &str = "\
INSERT INTO dedupe AS d (tenant, key, event_id, correlation_id, expires_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::uuid[], $5::bigint[])
ON CONFLICT (tenant, key) DO UPDATE
    SET event_id = EXCLUDED.event_id, correlation_id = EXCLUDED.correlation_id,
        expires_at = EXCLUDED.expires_at
    WHERE d.expires_at <= $6
RETURNING d.tenant, d.key";

pub(super) const DEDUPE_READ: &str = "\
SELECT d.tenant, d.key, d.event_id, d.correlation_id
FROM dedupe d JOIN unnest($1::text[], $2::text[]) AS k(tenant, key)
    ON d.tenant = k.tenant AND d.key = k.key";

/// An event written again (same id) takes a new `seq`: it is listed as the newest.
pub(super) const EVENTS_UPSERT: &str = "\
INSERT INTO events (id, tenant, accepted_at, record, event_type, user_id)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::json[], $5::text[], $6::text[])
ON CONFLICT (id) DO UPDATE
    SET seq = EXCLUDED.seq, tenant = EXCLUDED.tenant, accepted_at = EXCLUDED.accepted_at,
        record = EXCLUDED.record, event_type = EXCLUDED.event_type, user_id = EXCLUDED.user_id";

pub(crate) const EVENTS_INSERT: &str = "\
INSERT INTO events (id, tenant, accepted_at, record, event_type, user_id)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::json[], $5::text[], $6::text[])";

pub(super) const ACTIONS_SELECT: &str = "\
INSERT INTO actions (id, agent, tenant, event_id, state, attempt, run_at, owner, lease_until,
                     updated_at, record)
SELECT u.id, u.agent, u.tenant, u.event_id, u.state, u.attempt, $1::bigint, u.owner,
       u.lease_until, $1::bigint, u.record
FROM unnest($2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::bigint[], $8::text[],
            $9::bigint[], $10::json[])
    AS u(id, agent, tenant, event_id, state, attempt, owner, lease_until, record)";

pub(super) const ACTIONS_CONFLICT: &str = "
ON CONFLICT (id) DO UPDATE
    SET seq = EXCLUDED.seq, agent = EXCLUDED.agent, tenant = EXCLUDED.tenant,
        event_id = EXCLUDED.event_id, state = EXCLUDED.state, attempt = EXCLUDED.attempt,
        run_at = EXCLUDED.run_at, owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until,
        last_error = NULL, updated_at = EXCLUDED.updated_at, record = EXCLUDED.record";

/// One `UPDATE` for many settles, each fenced by its attempt and node.
pub(super) const SETTLE: &str = "\
UPDATE actions AS a SET
    state = s.state,
    attempt = a.attempt + s.bump,
    owner = CASE WHEN s.state = 'leased' THEN a.owner END,
    lease_until = CASE WHEN s.state = 'leased' THEN s.lease_until END,
    run_at = COALESCE(s.run_at, a.run_at),
    last_error = CASE WHEN s.set_error THEN s.error ELSE a.last_error END,
    updated_at = $1::bigint
FROM unnest($2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
            $8::bigint[], $9::bool[], $10::json[], $11::bigint[])
    AS s(id, attempt, node, state, bump, lease_until, run_at, set_error, error, idx)
WHERE a.id = s.id AND a.attempt = s.attempt AND a.owner = s.node AND a.state = 'leased'
RETURNING s.idx";

pub(super) const RESULTS_INSERT: &str = "\
INSERT INTO results (request_id, expires_at, record)
SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::json[])";

pub(crate) const AUDIT_INSERT: &str = "\
INSERT INTO audit (at, step, event_id, correlation_id, request_id, action_id, event_type,
                   user_id, tenant, agent, detail)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::uuid[], $4::uuid[], $5::uuid[], $6::uuid[],
                     $7::text[], $8::text[], $9::text[], $10::text[], $11::json[])";

pub(crate) const NOTIFY: &str = "SELECT pg_notify($1, '')";
