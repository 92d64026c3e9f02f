//! Scenario tests of the sans-IO core, each checking what an app developer would check:
//! what reached the server, when, and what is left pending or dead.
//!
//! Times in assertions are milliseconds since the simulation started (`T0`). Unless a
//! test says otherwise: latency 10 ms, jitter "none", retryIntervalMs 1000, maxDelayMs
//! 60000.
#![cfg(not(target_arch = "wasm32"))] // native only: the core needs no browser

mod sim;

use durable_outbox::core::{DeadReason, ErrorCode, Event, FlagsPatch, FlushSummary, Jitter};
use sim::{config, flags, Reply, Sim, OK, T0};

fn sim(max_attempts: u32, concurrency: usize) -> Sim {
    Sim::new(config(max_attempts, concurrency), flags(true, 1_000))
}

fn enable_retries(on: bool) -> FlagsPatch {
    FlagsPatch {
        retry_enabled: Some(on),
        retry_interval_ms: None,
    }
}

fn interval(ms: u64) -> FlagsPatch {
    FlagsPatch {
        retry_enabled: None,
        retry_interval_ms: Some(ms as f64),
    }
}

#[test]
fn a_2xx_delivers_and_leaves_nothing_pending() {
    let mut s = sim(5, 4);
    let k = s.enqueue(None, None).unwrap();
    assert_eq!(k.len(), 36, "a generated key is a UUID");
    assert_eq!(&k[14..15], "7", "a UUIDv7");
    assert_eq!(s.in_flight(), 1, "sent at once");
    s.advance(10);

    assert!(!s.is_pending(&k));
    assert!(s.dead(&k).is_none());
    assert_eq!(s.server.applied_keys_in_order(), [k.as_str()]);
    assert_eq!(s.server.requests_for(&k).len(), 1);
    let stats = s.engine.stats(s.now);
    assert_eq!(
        (stats.pending, stats.in_flight, stats.dead, stats.delivered),
        (0, 0, 0, 1)
    );
    assert_eq!(
        s.events_where(|_| true),
        [
            Event::Enqueued {
                key: k.clone(),
                group: None
            },
            Event::Sending {
                key: k.clone(),
                attempt: 1
            },
            Event::Delivered {
                key: k.clone(),
                group: None,
                attempts: 1,
                status: 200
            },
        ]
    );
    assert_eq!(s.engine.poll_timeout(), None);
    s.assert_clean();
}

#[test]
fn a_400_dead_letters_at_once_and_blocks_neither_other_groups_nor_its_own() {
    let mut s = sim(5, 4);
    s.script("a1", [Reply::Status(400)]);
    for (k, g) in [
        ("a1", Some("a")),
        ("a2", Some("a")),
        ("b1", Some("b")),
        ("u", None),
    ] {
        s.enqueue(Some(k), g).unwrap();
    }
    s.advance(10);

    let dead = s.dead("a1").expect("a1 is dead");
    assert_eq!(dead.reason, DeadReason::Rejected);
    assert_eq!(dead.last_error.status, Some(400));
    assert_eq!(dead.message.attempts, 1);
    assert_eq!(dead.dead_at, T0 + 10);
    assert_eq!(
        s.server.requests_for("a1").len(),
        1,
        "a rejected message is never resent"
    );
    assert_eq!(
        s.send_times("a2"),
        [10],
        "the next of its group goes as soon as it is rejected"
    );
    assert_eq!(s.send_times("b1"), [0]);
    assert_eq!(s.send_times("u"), [0]);

    s.advance(10);
    assert!(s.storage.pending.is_empty());
    assert_eq!(s.delivered, ["b1", "u", "a2"]);
    assert!(s.engine.is_dead("a1"));
    assert!(
        s.events_where(|e| matches!(
            e,
            Event::DeadLettered {
                reason: DeadReason::Rejected,
                ..
            }
        ))
        .len()
            == 1
    );
    s.assert_clean();
}

#[test]
fn server_errors_until_max_attempts_dead_letter_after_exactly_max_attempts_requests() {
    let mut s = sim(5, 4);
    s.script("k", [500, 502, 503, 504, 503, 503, 503].map(Reply::Status));
    s.enqueue(Some("k"), None).unwrap();
    s.run_until_idle(3_600_000);

    assert_eq!(s.server.requests_for("k").len(), 5);
    assert_eq!(
        s.sends_of("k")
            .iter()
            .map(|r| r.attempt)
            .collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    // Each wait runs from the failed answer (10 ms after the send): 1 s, 2 s, 4 s, 8 s.
    assert_eq!(s.send_times("k"), [0, 1_010, 3_020, 7_030, 15_040]);
    let dead = s.dead("k").expect("dead after the cap");
    assert_eq!(dead.reason, DeadReason::MaxAttempts);
    assert_eq!(dead.message.attempts, 5);
    assert_eq!(dead.last_error.status, Some(503));
    assert!(!s.is_pending("k"));
    s.assert_clean();
}

#[test]
fn timeouts_count_toward_the_cap_and_other_transient_statuses_are_retried() {
    let mut s = sim(2, 4);
    s.script(
        "t",
        [
            Reply::Timeout { applied: false },
            Reply::Timeout { applied: true },
        ],
    );
    for status in [408, 409, 425, 429] {
        s.script(&format!("s{status}"), [Reply::Status(status), OK]);
        s.enqueue(Some(&format!("s{status}")), None).unwrap();
    }
    s.enqueue(Some("t"), None).unwrap();
    s.run_until_idle(3_600_000);

    assert_eq!(s.server.requests_for("t").len(), 2);
    assert_eq!(s.dead("t").map(|d| d.reason), Some(DeadReason::MaxAttempts));
    for status in [408, 409, 425, 429] {
        let k = format!("s{status}");
        assert!(
            s.delivered.contains(&k),
            "{status} is transient: retried, then delivered"
        );
        assert_eq!(s.server.requests_for(&k).len(), 2);
    }
    s.assert_clean();
}

#[test]
fn network_errors_never_burn_attempts_and_going_online_wakes_waiting_messages_at_once() {
    let mut s = sim(2, 4);
    // The network is gone but navigator.onLine still says online (it can lie): the
    // outbox keeps probing with backoff, and no probe counts.
    s.set_link(false);
    s.enqueue(Some("k"), None).unwrap();
    s.advance(60_000);

    // A network failure is reported 5 ms after the send; waits double from 1 s.
    assert_eq!(s.send_times("k"), [0, 1_005, 3_010, 7_015, 15_020, 31_025]);
    assert!(
        s.sends_of("k").iter().all(|r| r.attempt == 1),
        "every probe is still attempt 1"
    );
    assert!(s.server.requests.is_empty());
    assert!(
        s.is_pending("k"),
        "6 failures > maxAttempts 2, yet not dead"
    );
    assert_eq!(s.storage.pending["k"].attempts, 0);
    let failed = s.events_where(|e| matches!(e, Event::AttemptFailed { .. }));
    assert_eq!(failed.len(), 6);
    assert!(failed
        .iter()
        .all(|e| matches!(e, Event::AttemptFailed { counted: false, .. })));

    // The browser notices: offline. The next probe was due at 63030.
    s.set_online(false);
    s.advance(1_000);
    assert_eq!(s.sends_of("k").len(), 6);
    assert_eq!(s.engine.poll_timeout(), None, "no timer while offline");

    // Back online at 61000, 2 s before that probe: the message goes at once.
    s.set_online(true);
    assert_eq!(s.send_times("k").last(), Some(&61_000));
    s.advance(10);
    assert_eq!(s.delivered, ["k"]);
    assert_eq!(s.server.requests_for("k").len(), 1);
    assert_eq!(s.events_where(|e| matches!(e, Event::Online)).len(), 1);

    // Offline, nothing goes out even when due; online, it goes at once.
    s.set_online(false);
    s.enqueue(Some("k2"), None).unwrap();
    s.advance(120_000);
    assert_eq!(s.sends_of("k2").len(), 0);
    s.set_online(true);
    assert_eq!(s.send_times("k2"), [s.now - T0]);
    s.advance(10);
    assert_eq!(s.delivered, ["k", "k2"]);
    s.assert_clean();
}

#[test]
fn retry_after_is_a_minimum_wait() {
    let mut s = sim(5, 4);
    // Retry-After longer than the backoff (1 s): it wins.
    s.script("long", [Reply::RetryAfter(503, 7)]);
    // Retry-After shorter than the backoff (2 s for the second retry): the backoff wins.
    s.script("short", [Reply::Status(503), Reply::RetryAfter(429, 1)]);
    s.enqueue(Some("long"), None).unwrap();
    s.enqueue(Some("short"), None).unwrap();
    s.run_until_idle(3_600_000);

    assert_eq!(s.send_times("long"), [0, 7_010]);
    assert_eq!(s.send_times("short"), [0, 1_010, 3_020]);
    let scheduled =
        s.events_where(|e| matches!(e, Event::RetryScheduled { key, .. } if key == "long"));
    assert_eq!(
        scheduled,
        [Event::RetryScheduled {
            key: "long".into(),
            at: T0 + 7_010,
            delay_ms: 7_000
        }]
    );
    assert_eq!(s.delivered.len(), 2);
    s.assert_clean();
}

#[test]
fn backoff_waits_double_from_the_interval_up_to_max_delay_without_jitter() {
    let mut cfg = config(8, 4);
    cfg.max_delay_ms = 3_000;
    let mut s = Sim::new(cfg, flags(true, 500));
    s.script("k", [Reply::Status(503); 7]);
    s.enqueue(Some("k"), None).unwrap();
    s.run_until_idle(3_600_000);

    let delays: Vec<u64> = s
        .events_where(|e| matches!(e, Event::RetryScheduled { .. }))
        .into_iter()
        .map(|e| match e {
            Event::RetryScheduled { delay_ms, .. } => delay_ms,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(delays, [500, 1_000, 2_000, 3_000, 3_000, 3_000, 3_000]);
    // The gaps between sends are those waits plus the 10 ms each answer took.
    let times = s.send_times("k");
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0] - 10).collect();
    assert_eq!(gaps, delays);
    assert_eq!(s.delivered, ["k"]);
    assert_eq!(s.sends_of("k").last().unwrap().attempt, 8);
    s.assert_clean();
}

#[test]
fn jitter_spreads_waits_within_their_band() {
    for (jitter, lo_frac) in [(Jitter::Full, 0.0), (Jitter::Equal, 0.5)] {
        let mut cfg = config(4, 8);
        cfg.jitter = jitter;
        let mut s = Sim::with_seed(cfg, flags(true, 1_000), 42);
        for i in 0..8 {
            let k = format!("k{i}");
            s.script(&k, [Reply::Status(503); 3]);
            s.enqueue(Some(&k), None).unwrap();
        }
        s.run_until_idle(3_600_000);
        let mut first_waits = Vec::new();
        for (_, e) in &s.events {
            if let Event::RetryScheduled { delay_ms, .. } = e {
                first_waits.push(*delay_ms);
            }
        }
        assert_eq!(first_waits.len(), 8 * 3);
        // The sim's own check (Sim::violations) holds every wait to its retry's band.
        s.assert_clean();
        first_waits.sort_unstable();
        first_waits.dedup();
        assert!(
            first_waits.len() > 8,
            "{jitter:?}: waits are spread, not in lockstep: {first_waits:?}"
        );
        assert!(first_waits
            .iter()
            .all(|&d| d as f64 >= 1_000.0 * lo_frac && d <= 4_000));
    }
}

#[test]
fn with_retries_off_first_sends_happen_failures_stay_pending_and_turning_them_on_resumes() {
    let mut s = Sim::new(config(5, 4), flags(false, 1_000));
    s.script("fails", [Reply::Status(503)]);
    s.enqueue(Some("fails"), None).unwrap();
    s.enqueue(Some("fine"), None).unwrap();
    s.advance(3_600_000);

    assert_eq!(s.delivered, ["fine"], "first sends still happen");
    assert_eq!(s.sends_of("fails").len(), 1, "no automatic resend");
    assert!(
        s.is_pending("fails") && s.dead("fails").is_none(),
        "pending, not dead"
    );
    assert_eq!(s.storage.pending["fails"].attempts, 1);
    assert_eq!(s.storage.pending["fails"].next_attempt_at, None);
    assert_eq!(s.engine.view("fails").unwrap().next_attempt_at, None);
    assert_eq!(s.engine.poll_timeout(), None);

    s.set_flags(enable_retries(true)).unwrap();
    let on_at = s.now - T0;
    assert_eq!(
        s.send_times("fails"),
        [0, on_at],
        "its wait is long over: it goes at once"
    );
    s.advance(10);
    assert_eq!(s.delivered, ["fine", "fails"]);
    assert_eq!(
        s.storage.flags.map(|f| f.retry_enabled),
        Some(true),
        "flags are persisted"
    );
    s.assert_clean();
}

#[test]
fn a_shorter_interval_reschedules_a_waiting_message_earlier() {
    let mut cfg = config(5, 4);
    cfg.max_delay_ms = 600_000;
    let mut s = Sim::new(cfg, flags(true, 60_000));
    s.script("k", [Reply::Status(503)]);
    s.enqueue(Some("k"), None).unwrap();
    s.advance(1_000);
    assert_eq!(
        s.engine.view("k").unwrap().next_attempt_at,
        Some(T0 + 60_010)
    );
    assert_eq!(s.engine.poll_timeout(), Some(T0 + 60_010));

    s.set_flags(interval(2_000)).unwrap();
    assert_eq!(
        s.engine.view("k").unwrap().next_attempt_at,
        Some(T0 + 2_010)
    );
    assert_eq!(s.engine.poll_timeout(), Some(T0 + 2_010));
    assert!(
        s.events_where(|e| matches!(e, Event::RetryScheduled { at, .. } if *at == T0 + 2_010))
            .len()
            == 1
    );
    s.advance(5_000);
    assert_eq!(s.send_times("k"), [0, 2_010]);
    assert_eq!(s.delivered, ["k"]);
    assert!(s
        .set_flags(interval(0))
        .is_err_and(|e| e.code == ErrorCode::InvalidOptions));
    assert_eq!(
        s.engine.flags().retry_interval_ms,
        2_000,
        "a refused patch changes nothing"
    );
    s.assert_clean();
}

#[test]
fn a_message_older_than_max_age_is_dead_lettered_expired_without_sending() {
    let mut cfg = config(10, 4);
    cfg.max_age_ms = 10_000;
    let mut s = Sim::new(cfg, flags(true, 4_000));

    // Enqueued offline, online again only after maxAgeMs: never sent.
    s.set_online(false);
    s.enqueue(Some("offline"), None).unwrap();
    s.advance(20_000);
    s.set_online(true);
    assert_eq!(s.sends_of("offline").len(), 0);
    let dead = s.dead("offline").expect("expired");
    assert_eq!(dead.reason, DeadReason::Expired);
    assert_eq!(dead.last_error.status, None);

    // Failing: sent at 0 and 4 s; its next retry (at 12 s) is past maxAgeMs.
    let start = s.now;
    s.script("failing", [Reply::Status(503); 10]);
    s.enqueue(Some("failing"), None).unwrap();
    s.run_until_idle(3_600_000);
    assert_eq!(
        s.sends_of("failing")
            .iter()
            .map(|r| r.at - start)
            .collect::<Vec<_>>(),
        [0, 4_010]
    );
    let dead = s.dead("failing").expect("expired");
    assert_eq!(dead.reason, DeadReason::Expired);
    assert!(dead.dead_at >= start + 10_000);
    assert_eq!(dead.message.attempts, 2);
    assert!(s.storage.pending.is_empty());
    s.assert_clean();
}

#[test]
fn per_group_order_holds_while_other_groups_proceed() {
    let mut s = sim(5, 4);
    s.script("a", [Reply::Status(503), Reply::Status(503)]);
    for (k, g) in [
        ("a", Some("n1")),
        ("x", Some("n2")),
        ("b", Some("n1")),
        ("y", Some("n2")),
        ("u", None),
        ("c", Some("n1")),
    ] {
        s.enqueue(Some(k), g).unwrap();
    }
    s.run_until_idle(3_600_000);

    assert_eq!(s.send_times("a"), [0, 1_010, 3_020]);
    assert_eq!(s.send_times("b"), [3_030], "b waits until a is delivered");
    assert_eq!(s.send_times("c"), [3_040]);
    assert_eq!(s.send_times("x"), [0]);
    assert_eq!(s.send_times("y"), [10], "group n2 does not wait on n1");
    assert_eq!(s.send_times("u"), [0]);
    assert_eq!(
        s.server.applied_keys_in_order(),
        ["x", "u", "y", "a", "b", "c"]
    );
    s.assert_clean();
}

#[test]
fn at_most_concurrency_requests_are_in_flight() {
    let mut s = sim(5, 2);
    s.latency = (100, 100);
    for i in 0..6 {
        s.enqueue(Some(&format!("k{i}")), None).unwrap();
    }
    assert_eq!(s.in_flight(), 2);
    assert_eq!(s.engine.stats(s.now).in_flight, 2);
    s.run_until_idle(3_600_000);
    assert_eq!(s.max_in_flight_seen, 2);
    let times: Vec<u64> = (0..6).map(|i| s.send_times(&format!("k{i}"))[0]).collect();
    assert_eq!(
        times,
        [0, 0, 100, 100, 200, 200],
        "oldest first, two at a time"
    );
    assert_eq!(s.delivered.len(), 6);
    s.assert_clean();
}

#[test]
fn flush_sends_everything_now_ignoring_backoff_and_the_retry_flag_and_summarises() {
    let mut s = Sim::new(config(5, 8), flags(true, 60_000));
    s.script("ok", [Reply::Status(503), OK]);
    s.script("fails", [Reply::Status(503), Reply::Status(503)]);
    s.script("rejected", [Reply::Status(503), Reply::Status(400)]);
    s.script("head", [Reply::Status(503), Reply::Status(503)]);
    s.script("behind", [Reply::Status(503)]);
    for (k, g) in [
        ("ok", None),
        ("fails", None),
        ("rejected", None),
        ("head", Some("g")),
        ("behind", Some("g")),
    ] {
        s.enqueue(Some(k), g).unwrap();
    }
    s.advance(1_000);
    s.set_flags(enable_retries(false)).unwrap();
    assert_eq!(
        s.sends.len(),
        4,
        "each failed once; 'behind' waits for 'head'"
    );

    let id = s.flush();
    assert_eq!(
        s.in_flight(),
        4,
        "sent at once, 59 s before their backoff ends, with retries off"
    );
    s.advance(10);
    assert_eq!(
        s.flush_done.get(&id),
        Some(&FlushSummary {
            attempted: 4,
            delivered: 1,
            failed: 2,
            dead: 1
        }),
        "'behind' is not attempted: its group's head failed again"
    );
    assert_eq!(s.delivered, ["ok"]);
    assert_eq!(
        s.dead("rejected").map(|d| d.reason),
        Some(DeadReason::Rejected)
    );
    s.advance(3_600_000);
    assert_eq!(s.sends.len(), 8, "the flush is over; retries are still off");
    assert!(s.is_pending("fails") && s.is_pending("head") && s.is_pending("behind"));

    // A flush of an empty outbox (nothing pending) finishes at once.
    let mut empty = sim(5, 4);
    let id = empty.flush();
    assert_eq!(empty.flush_done.get(&id), Some(&FlushSummary::default()));
    s.assert_clean();
}

#[test]
fn flush_while_a_send_is_in_flight_waits_for_it_and_counts_it() {
    let mut s = sim(5, 4);
    s.latency = (100, 100);
    s.enqueue(Some("k"), None).unwrap();
    s.advance(50);
    let id = s.flush();
    assert_eq!(
        s.flush_done.get(&id),
        None,
        "the flush waits for the request in flight"
    );
    s.advance(50);
    let summary = s
        .flush_done
        .get(&id)
        .copied()
        .expect("done when it settles");
    assert_eq!(summary.delivered, 1);
    assert_eq!(
        summary.attempted,
        summary.delivered + summary.failed + summary.dead,
        "every message the summary reports settled by a request was attempted: {summary:?}"
    );
    assert_eq!(s.server.requests_for("k").len(), 1, "not sent twice");
    s.assert_clean();
}

#[test]
fn a_flush_while_offline_still_sends() {
    let mut s = sim(5, 4);
    s.set_online(false);
    s.enqueue(Some("k"), None).unwrap();
    assert_eq!(s.sends.len(), 0);
    // navigator.onLine says offline, but the app asked: try anyway.
    s.set_link(true);
    let id = s.flush();
    s.advance(10);
    assert_eq!(
        s.flush_done.get(&id),
        Some(&FlushSummary {
            attempted: 1,
            delivered: 1,
            failed: 0,
            dead: 0
        })
    );
    s.assert_clean();
}

#[test]
fn duplicate_keys_are_refused_whether_pending_reserved_or_dead() {
    let mut s = sim(5, 4);
    s.script("dead", [Reply::Status(400)]);
    s.enqueue(Some("dead"), None).unwrap();
    s.advance(10);
    s.set_online(false);
    s.enqueue(Some("pending"), Some("g")).unwrap();
    let reserved = s.admit(Some("reserved"), None).unwrap();
    let before = (s.storage.pending.len(), s.storage.dead.len());

    for key in ["pending", "reserved", "dead"] {
        let err = s.enqueue(Some(key), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::DuplicateKey, "{key}");
        assert_eq!(err.code.as_str(), "duplicate-key");
    }
    assert_eq!(
        (s.storage.pending.len(), s.storage.dead.len()),
        before,
        "nothing written"
    );

    // Released keys are free again.
    s.engine.abort_admitted(&reserved.key);
    s.enqueue(Some("reserved"), None).unwrap();
    s.discard(Some(vec!["dead".into()]));
    s.enqueue(Some("dead"), None).unwrap();
    // Bad keys and groups are refused too.
    assert_eq!(
        s.enqueue(Some(""), None).unwrap_err().code,
        ErrorCode::InvalidKey
    );
    assert_eq!(
        s.enqueue(Some("has space"), None).unwrap_err().code,
        ErrorCode::InvalidKey
    );
    assert_eq!(
        s.enqueue(None, Some("")).unwrap_err().code,
        ErrorCode::InvalidGroup
    );
    s.assert_clean();
}

#[test]
fn a_reload_mid_flight_resends_with_the_same_key_and_loses_nothing() {
    let mut s = sim(5, 1);
    s.latency = (100, 100);
    s.script("dead", [Reply::Status(400)]);
    s.enqueue(Some("dead"), None).unwrap();
    s.advance(100);
    s.enqueue(Some("k"), Some("g")).unwrap();
    s.enqueue(Some("next"), Some("g")).unwrap();
    s.advance(50);
    assert_eq!(s.in_flight(), 1);
    assert!(
        s.server.has_applied("k"),
        "the server took it; the answer never arrives"
    );
    assert_eq!(
        s.storage.pending["k"].attempts, 1,
        "the attempt was persisted before the send"
    );

    s.reload();
    assert_eq!(s.engine.stats(s.now).pending, 2);
    assert!(s.engine.is_dead("dead"));
    assert_eq!(
        s.enqueue(Some("dead"), None).unwrap_err().code,
        ErrorCode::DuplicateKey
    );
    s.run_until_idle(3_600_000);

    let k: Vec<_> = s
        .sends_of("k")
        .iter()
        .map(|r| (r.key.clone(), r.attempt))
        .collect();
    assert_eq!(
        k,
        [("k".to_string(), 1), ("k".to_string(), 2)],
        "resent with the same key"
    );
    assert_eq!(s.server.requests_for("k").len(), 2);
    assert_eq!(
        s.server.replays, 1,
        "the server's idempotency record answered the resend"
    );
    assert_eq!(s.server.applied_keys_in_order(), ["k", "next"]);
    assert!(s.storage.pending.is_empty());
    s.assert_clean();
}

#[test]
fn a_reload_during_the_last_allowed_attempt_sends_no_extra_attempt() {
    let mut s = sim(2, 4);
    s.script(
        "k",
        [Reply::Status(503), Reply::Status(503), Reply::Status(503)],
    );
    s.enqueue(Some("k"), None).unwrap();
    s.advance(1_015); // the second (last allowed) attempt went out at 1010
    assert_eq!(s.sends_of("k").len(), 2);
    s.reload();
    s.run_until_idle(3_600_000);

    assert!(
        s.sends_of("k").iter().all(|r| r.attempt <= 2),
        "{:?}",
        s.sends_of("k")
    );
    assert_eq!(
        s.server.requests_for("k").len(),
        2,
        "maxAttempts requests, no more"
    );
    let dead = s.dead("k").expect("the cap is used up");
    assert_eq!(dead.reason, DeadReason::MaxAttempts);
    assert_eq!(dead.message.attempts, 2);
    s.assert_clean();
}

#[test]
fn redrive_keeps_the_key_and_resets_attempts_and_discard_deletes() {
    let mut s = sim(2, 4);
    s.script("k", [Reply::Status(503), Reply::Status(503), OK]);
    s.script("gone", [Reply::Status(422)]);
    s.enqueue(Some("k"), None).unwrap();
    s.enqueue(Some("gone"), None).unwrap();
    s.run_until_idle(3_600_000);
    assert_eq!(s.dead("k").map(|d| d.reason), Some(DeadReason::MaxAttempts));
    assert!(s.dead("gone").is_some());

    let moved = s.redrive(Some(vec!["k".into()]));
    assert_eq!(moved, ["k"]);
    assert!(s.dead("k").is_none());
    assert_eq!(
        s.storage.pending["k"].attempts, 1,
        "reset to 0, and the resend went out at once"
    );
    s.run_until_idle(3_600_000);
    let attempts: Vec<u32> = s.sends_of("k").iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, [1, 2, 1]);
    assert!(s.sends_of("k").iter().all(|r| r.key == "k"));
    assert_eq!(s.delivered, ["k"]);
    assert_eq!(
        s.events_where(|e| matches!(e, Event::Redriven { .. })),
        [Event::Redriven { key: "k".into() }]
    );

    assert_eq!(s.discard(None), ["gone"]);
    assert!(s.storage.dead.is_empty() && !s.engine.is_dead("gone"));
    assert_eq!(
        s.events_where(|e| matches!(e, Event::Discarded { .. })),
        [Event::Discarded { key: "gone".into() }]
    );
    assert_eq!(
        s.server.requests_for("gone").len(),
        1,
        "a discarded letter is never sent"
    );
    s.assert_clean();
}

#[test]
fn poll_timeout_is_the_earliest_due_time_and_none_when_nothing_is_due_or_all_slots_are_busy() {
    let mut s = sim(5, 2);
    assert_eq!(s.engine.poll_timeout(), None, "empty");

    s.script("k1", [Reply::Status(503)]);
    s.script("k2", [Reply::RetryAfter(503, 5)]);
    s.enqueue(Some("k1"), None).unwrap();
    s.enqueue(Some("k2"), None).unwrap();
    s.enqueue(Some("k3"), None).unwrap();
    assert_eq!(s.in_flight(), 2);
    assert_eq!(
        s.sends_of("k3").len(),
        0,
        "k3 is due but both slots are busy"
    );
    assert_eq!(s.engine.poll_timeout(), None);

    s.advance(20); // k1 and k2 fail at 10, k3 goes at 10 and is delivered at 20
    assert_eq!(s.delivered, ["k3"]);
    assert_eq!(
        s.engine.poll_timeout(),
        Some(T0 + 1_010),
        "k1's backoff ends before k2's Retry-After"
    );

    s.set_flags(enable_retries(false)).unwrap();
    assert_eq!(
        s.engine.poll_timeout(),
        None,
        "nothing is due while retries are off"
    );
    s.set_flags(enable_retries(true)).unwrap();
    assert_eq!(s.engine.poll_timeout(), Some(T0 + 1_010));
    s.set_online(false);
    assert_eq!(s.engine.poll_timeout(), None, "nothing is sent offline");
    s.set_online(true);

    s.advance(1_000); // k1 resent at 1010 and delivered at 1020
    assert_eq!(s.engine.poll_timeout(), Some(T0 + 5_010));
    s.run_until_idle(60_000);
    assert_eq!(s.engine.poll_timeout(), None);
    assert_eq!(s.delivered, ["k3", "k1", "k2"]);
    s.assert_clean();
}

#[test]
fn pausing_stops_automatic_sends_but_not_a_flush_and_resuming_sends_what_is_due() {
    let mut s = sim(5, 4);
    s.set_paused(true);
    s.enqueue(Some("a"), None).unwrap();
    s.advance(60_000);
    assert_eq!(s.sends.len(), 0, "nothing goes out while paused");
    assert_eq!(s.engine.poll_timeout(), None);

    let id = s.flush();
    s.advance(10);
    assert_eq!(
        s.flush_done.get(&id),
        Some(&FlushSummary {
            attempted: 1,
            delivered: 1,
            failed: 0,
            dead: 0
        })
    );

    s.enqueue(Some("b"), None).unwrap();
    s.advance(1_000);
    assert_eq!(s.sends_of("b").len(), 0);
    s.set_paused(false);
    assert_eq!(
        s.send_times("b"),
        [61_010],
        "sent as soon as sending resumes"
    );
    s.advance(10);
    assert_eq!(s.delivered, ["a", "b"]);
    s.assert_clean();
}
