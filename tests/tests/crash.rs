//! Crash tests with real processes: a stateful hub node (`atamo-crash-node`) accepting a stream
//! of events is killed with SIGKILL at random moments and restarted; in the end every event it
//! acknowledged has been delivered, and any action delivered twice carried the same
//! idempotency key. On SQLite with one node, and on PostgreSQL with two nodes sharing the work,
//! where the survivor finishes what a killed node held.
//!
//! The kill moments come from a seed printed at the start (set `ATAMO_CRASH_SEED` to replay).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NODE: &str = env!("CARGO_BIN_EXE_atamo-crash-node");

/// A running node and the numbers it has reported accepted.
struct Node {
    child: Child,
    reader: Option<std::thread::JoinHandle<()>>,
}

type Accepted = Arc<Mutex<BTreeSet<u64>>>;

fn spawn(env: &[(&str, String)], accepted: &Accepted) -> Node {
    let mut cmd = Command::new(NODE);
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start the node");
    let out = child.stdout.take().unwrap();
    let accepted = accepted.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if let Some(n) = line.strip_prefix("accepted ") {
                accepted.lock().unwrap().insert(n.parse().unwrap());
            }
        }
    });
    Node {
        child,
        reader: Some(reader),
    }
}

impl Node {
    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
    }

    /// Waits for a finishing node to exit by itself.
    fn finish(mut self, limit: Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "node exited with {status}");
                break;
            }
            if start.elapsed() > limit {
                self.child.kill().unwrap();
                panic!("node did not finish within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
    }
}

/// The smallest number not yet accepted: where a restarted node starts again (it publishes
/// the accepted ones after it once more; their dedupe keys make that harmless).
fn resume_from(accepted: &Accepted, to: u64) -> u64 {
    let got = accepted.lock().unwrap();
    (0..to).find(|n| !got.contains(n)).unwrap_or(to)
}

/// One ledger line: the event key, the action's idempotency key, its attempt and the node that
/// carried it out.
struct Delivery {
    key: String,
    idempotency_key: String,
    node: String,
}

fn ledger(path: &Path) -> Vec<Delivery> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            assert_eq!(parts.len(), 4, "torn ledger line {l:?}");
            Delivery {
                key: parts[0].to_owned(),
                idempotency_key: parts[1].to_owned(),
                node: parts[3].to_owned(),
            }
        })
        .collect()
}

/// Every accepted event was delivered; every event's deliveries share one idempotency key.
/// Returns how many deliveries were repeats.
fn check(deliveries: &[Delivery], prefix: &str, accepted: &BTreeSet<u64>) -> usize {
    let mut by_key: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for d in deliveries {
        by_key.entry(&d.key).or_default().insert(&d.idempotency_key);
        *count.entry(&d.key).or_default() += 1;
    }
    let mut lost = Vec::new();
    for n in accepted {
        let key = format!("{prefix}-{n}");
        match by_key.get(key.as_str()) {
            None => lost.push(key),
            Some(keys) => assert_eq!(
                keys.len(),
                1,
                "{key} was delivered as different actions: {keys:?}"
            ),
        }
    }
    assert!(lost.is_empty(), "accepted but never delivered: {lost:?}");
    count
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{prefix}-")))
        .map(|(_, n)| n - 1)
        .sum()
}

fn seed() -> u64 {
    let seed = std::env::var("ATAMO_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("crash test seed: {seed} (ATAMO_CRASH_SEED={seed} replays it)");
    seed
}

#[test]
fn a_sqlite_node_killed_ten_times_loses_no_accepted_event() {
    let mut rng = fastrand::Rng::with_seed(seed());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("atamo.db");
    let ledger_path = dir.path().join("ledger.txt");
    const TO: u64 = 20_000;
    let base = vec![
        ("CRASH_STORE", format!("sqlite:{}", db.display())),
        ("CRASH_LEDGER", ledger_path.display().to_string()),
        ("CRASH_PREFIX", "e".to_owned()),
        ("CRASH_TO", TO.to_string()),
    ];
    let accepted: Accepted = Arc::default();
    let mut kills = 0;
    while kills < 10 {
        let from = resume_from(&accepted, TO);
        let mut env = base.clone();
        env.push(("CRASH_FROM", from.to_string()));
        let node = spawn(&env, &accepted);
        // Somewhere between start-up and a good part of the stream.
        std::thread::sleep(Duration::from_millis(rng.u64(50..400)));
        node.kill();
        kills += 1;
    }
    let killed_at = accepted.lock().unwrap().len();
    assert!(
        (killed_at as u64) < TO,
        "the kills came after the whole stream was accepted"
    );
    let mut env = base.clone();
    env.push(("CRASH_FROM", resume_from(&accepted, TO).to_string()));
    env.push(("CRASH_FINISH", "1".to_owned()));
    spawn(&env, &accepted).finish(Duration::from_secs(120));
    let accepted = accepted.lock().unwrap().clone();
    assert_eq!(accepted.len() as u64, TO, "the last run publishes the rest");
    let deliveries = ledger(&ledger_path);
    let repeats = check(&deliveries, "e", &accepted);
    eprintln!(
        "sqlite: {kills} kills ({killed_at} events accepted by then), {} events, {} deliveries, {repeats} repeated",
        accepted.len(),
        deliveries.len()
    );
}

#[test]
fn two_postgres_nodes_share_the_work_and_a_survivor_finishes_a_killed_nodes_actions() {
    let pg = atamo_test_pg::Pg::start();
    let schema = atamo_test_pg::fresh_schema("crash");
    let mut rng = fastrand::Rng::with_seed(seed());
    let dir = tempfile::tempdir().unwrap();
    let ledger_path = dir.path().join("ledger.txt");
    const TO: u64 = 1_500;
    let env = |prefix: &str, accepted: &Accepted, delay: u64| {
        vec![
            ("CRASH_STORE", format!("postgres:{}#{schema}", pg.url)),
            ("CRASH_LEDGER", ledger_path.display().to_string()),
            ("CRASH_PREFIX", prefix.to_owned()),
            ("CRASH_TO", TO.to_string()),
            ("CRASH_FROM", resume_from(accepted, TO).to_string()),
            ("CRASH_AGENT_DELAY_MS", delay.to_string()),
        ]
    };
    let a_accepted: Accepted = Arc::default();
    let b_accepted: Accepted = Arc::default();
    // Node b runs throughout; node a is killed at random moments and restarted.
    let b = spawn(&env("b", &b_accepted, 3), &b_accepted);
    for _ in 0..5 {
        let a = spawn(&env("a", &a_accepted, 3), &a_accepted);
        std::thread::sleep(Duration::from_millis(rng.u64(100..500)));
        a.kill();
    }
    // Once more with slow calls, so that many are in flight when a dies; then a stays down
    // for a while and b takes its actions over once their leases (1 s) end.
    let a = spawn(&env("a", &a_accepted, 200), &a_accepted);
    std::thread::sleep(Duration::from_millis(rng.u64(300..600)));
    a.kill();
    wait_for(&b_accepted, TO);
    std::thread::sleep(Duration::from_secs(3));
    // a comes back, publishes the rest of its stream and waits until no action is open.
    let mut last = env("a", &a_accepted, 3);
    last.push(("CRASH_FINISH", "1".to_owned()));
    spawn(&last, &a_accepted).finish(Duration::from_secs(120));
    b.kill();

    let deliveries = ledger(&ledger_path);
    let a_acc = a_accepted.lock().unwrap().clone();
    let b_acc = b_accepted.lock().unwrap().clone();
    assert_eq!((a_acc.len() as u64, b_acc.len() as u64), (TO, TO));
    let repeats = check(&deliveries, "a", &a_acc) + check(&deliveries, "b", &b_acc);
    // b never restarted: its node is the one that delivered b's first event.
    let b_node = deliveries
        .iter()
        .find(|d| d.key == "b-0")
        .map(|d| d.node.clone())
        .unwrap();
    let taken_over = deliveries
        .iter()
        .filter(|d| d.key.starts_with("a-") && d.node == b_node)
        .count();
    let nodes: BTreeSet<&str> = deliveries.iter().map(|d| d.node.as_str()).collect();
    eprintln!(
        "postgres: {} events, {} deliveries by {} node processes, {repeats} repeated, {taken_over} of a's actions finished by b",
        a_acc.len() + b_acc.len(),
        deliveries.len(),
        nodes.len()
    );
    assert!(
        taken_over > 0,
        "b finished none of the actions a held when it died"
    );
}

/// Waits (up to two minutes) until `n` numbers are accepted.
fn wait_for(accepted: &Accepted, n: u64) {
    let start = Instant::now();
    while (accepted.lock().unwrap().len() as u64) < n {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "publishing did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
