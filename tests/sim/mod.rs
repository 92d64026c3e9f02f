//! A small deterministic simulator for the sans-IO engine: a virtual clock, a scripted
//! or seeded-random server that applies each key once, a storage map updated exactly
//! when a real driver would persist, and a driver loop that follows the engine's
//! protocol (`poll_action` → persist → send → `on_outcome` → persist → `commit`).
//!
//! Nothing here reads the wall clock or an OS random source, so a failing case replays
//! exactly. While it runs, the driver checks the rules every step must keep and
//! records any breach in [`Sim::violations`]; tests assert that list is empty.

#![allow(dead_code)] // each test binary uses a different part of it

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use durable_outbox::core::outcome::parse_retry_after;
use durable_outbox::core::{
    classify_status, Action, Admitted, Config, DeadReason, Engine, Event, Flags, FlagsPatch,
    FlushId, FlushSummary, Jitter, LastError, Millis, OutboxError, Outcome, Settlement,
    StoredMessage,
};

/// The virtual clock's start: an ordinary recent date, in ms since the epoch.
pub const T0: Millis = 1_700_000_000_000;

/// xorshift64*: small, seeded, and the same on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.next_u64() % (hi - lo + 1)
        }
    }
    pub fn bytes10(&mut self) -> [u8; 10] {
        let mut b = [0u8; 10];
        for x in &mut b {
            *x = self.next_u64() as u8;
        }
        b
    }
}

/// What the simulated server (or the network in front of it) does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Answer with this status. A 2xx applies the message (once per key).
    Status(u16),
    /// Answer with this status and `Retry-After: <secs>`.
    RetryAfter(u16, u64),
    /// Never answer: the driver's `requestTimeoutMs` fires. `applied` says whether the
    /// server did apply it before going silent.
    Timeout { applied: bool },
    /// The request never reaches the server (offline, DNS, reset).
    NetworkError,
}

pub const OK: Reply = Reply::Status(200);

/// How the server answers a key that has no script left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Always 200.
    Accept,
    /// Weighted random replies from the sim's seeded RNG.
    Random(Weights),
}

/// Relative weights of the random replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights {
    pub ok: u32,
    pub rejected: u32,
    pub transient: u32,
    pub retry_after: u32,
    pub timeout: u32,
    pub network: u32,
}

/// One request as the driver sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRecord {
    pub at: Millis,
    pub key: String,
    pub group: Option<String>,
    pub attempt: u32,
    /// The engine's seq for the message when it was sent.
    pub seq: u64,
    /// The sim's own idea of the message's place: the order of enqueues and redrives
    /// (a redriven message goes to the back), independent of the engine's seq.
    pub pos: u64,
}

/// The simulated server: a record of what reached it and what it applied.
#[derive(Debug)]
pub struct Server {
    pub mode: Mode,
    scripts: HashMap<String, VecDeque<Reply>>,
    /// Every request that reached the server (network errors do not), in order.
    pub requests: Vec<SendRecord>,
    /// First applications, in order: (key, group, the sim's position at that time).
    pub applied: Vec<(String, Option<String>, u64)>,
    applied_keys: HashSet<String>,
    /// Requests with an already-applied key (answered from the idempotency record).
    pub replays: u32,
}

impl Server {
    fn new() -> Self {
        Server {
            mode: Mode::Accept,
            scripts: HashMap::new(),
            requests: Vec::new(),
            applied: Vec::new(),
            applied_keys: HashSet::new(),
            replays: 0,
        }
    }

    fn reply_for(&mut self, key: &str, rng: &mut Rng) -> Reply {
        if let Some(r) = self.scripts.get_mut(key).and_then(VecDeque::pop_front) {
            return r;
        }
        match self.mode {
            Mode::Accept => OK,
            Mode::Random(w) => {
                let total = w.ok + w.rejected + w.transient + w.retry_after + w.timeout + w.network;
                let mut x = rng.range(0, u64::from(total.max(1)) - 1) as u32;
                let pick = |x: &mut u32, weight: u32| {
                    let hit = *x < weight;
                    *x = x.saturating_sub(weight);
                    hit
                };
                if pick(&mut x, w.ok) {
                    OK
                } else if pick(&mut x, w.rejected) {
                    Reply::Status([400, 404, 422][rng.range(0, 2) as usize])
                } else if pick(&mut x, w.transient) {
                    Reply::Status([500, 503, 408, 409, 425, 429][rng.range(0, 5) as usize])
                } else if pick(&mut x, w.retry_after) {
                    Reply::RetryAfter([503, 429][rng.range(0, 1) as usize], rng.range(0, 20))
                } else if pick(&mut x, w.timeout) {
                    Reply::Timeout {
                        applied: rng.range(0, 1) == 1,
                    }
                } else {
                    Reply::NetworkError
                }
            }
        }
    }

    fn apply(&mut self, r: &SendRecord) {
        if self.applied_keys.insert(r.key.clone()) {
            self.applied.push((r.key.clone(), r.group.clone(), r.pos));
        } else {
            self.replays += 1;
        }
    }

    /// Whether the server has applied this key.
    pub fn has_applied(&self, key: &str) -> bool {
        self.applied_keys.contains(key)
    }

    /// The requests that reached the server for one key.
    pub fn requests_for(&self, key: &str) -> Vec<&SendRecord> {
        self.requests.iter().filter(|r| r.key == key).collect()
    }

    /// The order in which keys were first applied.
    pub fn applied_keys_in_order(&self) -> Vec<&str> {
        self.applied.iter().map(|(k, _, _)| k.as_str()).collect()
    }
}

/// A dead letter as storage keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadRecord {
    pub message: StoredMessage,
    pub reason: DeadReason,
    pub last_error: LastError,
    pub dead_at: Millis,
}

/// The simulated IndexedDB: pending and dead records, and the persisted flags.
#[derive(Debug, Clone, Default)]
pub struct Storage {
    pub pending: BTreeMap<String, StoredMessage>,
    pub dead: BTreeMap<String, DeadRecord>,
    pub flags: Option<Flags>,
}

#[derive(Debug)]
struct InFlight {
    done_at: Millis,
    /// Orders responses arriving at the same instant by send order.
    id: u64,
    key: String,
    outcome: Outcome,
}

/// Per-message facts the driver's checks need, kept across reloads.
#[derive(Debug, Default, Clone)]
struct Track {
    /// Failures since (re)queue or load: the backoff exponent the engine should use.
    failures: u32,
    /// When the last failure was recorded, its Retry-After floor, and whether it was a
    /// network failure.
    last_fail: Option<(Millis, Millis, bool)>,
    /// The engine may not send before this (unless a flush or `online` releases it).
    earliest: Millis,
    /// Its last failure was a network failure and the browser has come online since:
    /// it is due at once.
    woken: bool,
}

/// The simulator: engine, driver, network, server and storage under one virtual clock.
pub struct Sim {
    pub now: Millis,
    pub engine: Engine,
    pub config: Config,
    pub storage: Storage,
    pub server: Server,
    pub rng: Rng,
    /// Request latency range (uniform), for answers that arrive.
    pub latency: (Millis, Millis),
    /// Whether requests can actually reach the server (`set_online` moves this and the
    /// engine's idea of it together; `set_link` moves only this one).
    pub link_up: bool,
    in_flight: Vec<InFlight>,
    next_req: u64,
    /// Every event the engine queued, with the time it was drained.
    pub events: Vec<(Millis, Event)>,
    /// Every request the driver sent (including ones that never reached the server).
    pub sends: Vec<SendRecord>,
    /// Keys in the order they were delivered.
    pub delivered: Vec<String>,
    pub enqueued: Vec<String>,
    pub discarded: Vec<String>,
    pub flush_done: HashMap<FlushId, FlushSummary>,
    /// Breaches of the rules, found while running.
    pub violations: Vec<String>,
    /// Most requests in flight at once, seen so far.
    pub max_in_flight_seen: usize,
    track: HashMap<String, Track>,
    /// Each message's place in enqueue-and-redrive order (see [`SendRecord::pos`]).
    pos: HashMap<String, u64>,
    next_pos: u64,
    /// Whether the engine was told it is online (the `navigator.onLine` mirror).
    engine_online: bool,
    /// Whether the app paused automatic sending.
    paused: bool,
    /// Safety net against a driver loop that never settles.
    pub max_steps: u64,
}

impl Sim {
    pub fn new(config: Config, flags: Flags) -> Self {
        Sim::with_seed(config, flags, 1)
    }

    pub fn with_seed(config: Config, flags: Flags, seed: u64) -> Self {
        let storage = Storage {
            flags: Some(flags),
            ..Storage::default()
        };
        Sim {
            now: T0,
            engine: Engine::new(config.clone(), flags),
            config,
            storage,
            server: Server::new(),
            rng: Rng::new(seed),
            latency: (10, 10),
            link_up: true,
            in_flight: Vec::new(),
            next_req: 0,
            events: Vec::new(),
            sends: Vec::new(),
            delivered: Vec::new(),
            enqueued: Vec::new(),
            discarded: Vec::new(),
            flush_done: HashMap::new(),
            violations: Vec::new(),
            max_in_flight_seen: 0,
            track: HashMap::new(),
            pos: HashMap::new(),
            next_pos: 0,
            engine_online: true,
            paused: false,
            max_steps: 1_000_000,
        }
    }

    /// Queue replies for a key; once they run out the server's mode answers.
    pub fn script(&mut self, key: &str, replies: impl IntoIterator<Item = Reply>) {
        self.server
            .scripts
            .entry(key.to_string())
            .or_default()
            .extend(replies);
    }

    // ----- the app-facing operations -----

    /// `enqueue`: admit, write the record, commit; then let the engine act.
    pub fn enqueue(
        &mut self,
        key: Option<&str>,
        group: Option<&str>,
    ) -> Result<String, OutboxError> {
        let admitted = self.admit(key, group)?;
        let key = admitted.key.clone();
        self.write_admitted(admitted);
        self.pump();
        Ok(key)
    }

    /// The first half of `enqueue`: the key is reserved, nothing is stored yet.
    pub fn admit(
        &mut self,
        key: Option<&str>,
        group: Option<&str>,
    ) -> Result<Admitted, OutboxError> {
        let random = self.rng.bytes10();
        self.engine.admit(
            key.map(str::to_string),
            group.map(str::to_string),
            self.now,
            random,
        )
    }

    /// The second half of `enqueue`: the record is committed to storage.
    pub fn write_admitted(&mut self, a: Admitted) {
        let m = StoredMessage {
            key: a.key.clone(),
            seq: a.seq,
            group: a.group.clone(),
            created_at: a.created_at,
            active_since: a.created_at,
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
            bytes: a.bytes,
        };
        if self.storage.pending.contains_key(&a.key) || self.storage.dead.contains_key(&a.key) {
            self.violation(format!("admit let a stored key through: {}", a.key));
        }
        self.storage.pending.insert(a.key.clone(), m);
        self.enqueued.push(a.key.clone());
        self.track.insert(a.key.clone(), Track::default());
        self.next_pos += 1;
        self.pos.insert(a.key.clone(), self.next_pos);
        self.engine.commit_admitted(a);
        self.drain_events();
    }

    pub fn set_flags(&mut self, patch: FlagsPatch) -> Result<Flags, OutboxError> {
        let flags = self.engine.set_flags(patch, self.now)?;
        self.storage.flags = Some(flags);
        self.pump();
        Ok(flags)
    }

    /// The browser's `online`/`offline` event, with connectivity really changing.
    pub fn set_online(&mut self, online: bool) {
        self.link_up = online;
        self.set_navigator_online(online);
    }

    /// Only `navigator.onLine` changes (it can lie).
    pub fn set_navigator_online(&mut self, online: bool) {
        if online && !self.engine_online {
            // Going online wakes every message whose last failure was a network failure.
            for t in self.track.values_mut() {
                if matches!(t.last_fail, Some((_, _, true))) {
                    t.earliest = 0;
                    t.woken = true;
                }
            }
        }
        self.engine_online = online;
        self.engine.set_online(online);
        self.pump();
    }

    /// The app pauses or resumes automatic sending (`flush` still sends).
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        self.engine.set_paused(paused);
        self.pump();
    }

    /// Only real connectivity changes; the engine is not told.
    pub fn set_link(&mut self, up: bool) {
        self.link_up = up;
    }

    pub fn flush(&mut self) -> FlushId {
        for t in self.track.values_mut() {
            t.earliest = 0; // a flush ignores backoff, Retry-After and the retry flag
        }
        let id = self.engine.flush();
        self.pump();
        id
    }

    /// The given keys that are dead letters, or every dead letter's key.
    fn dead_among(&self, keys: Option<Vec<String>>) -> Vec<String> {
        match keys {
            Some(k) => k
                .into_iter()
                .filter(|k| self.storage.dead.contains_key(k))
                .collect(),
            None => self.storage.dead.keys().cloned().collect(),
        }
    }

    /// `retryDead(keys?)`: moves dead letters back to pending with a fresh seq, attempts
    /// reset and the same key. Returns the keys moved.
    pub fn redrive(&mut self, keys: Option<Vec<String>>) -> Vec<String> {
        let keys = self.dead_among(keys);
        let mut moved = Vec::new();
        for key in &keys {
            let d = self.storage.dead.remove(key).expect("filtered");
            let m = StoredMessage {
                seq: self.engine.allocate_seq(self.now),
                active_since: self.now,
                attempts: 0,
                next_attempt_at: None,
                last_error: None,
                ..d.message
            };
            self.storage.pending.insert(key.clone(), m.clone());
            self.track.insert(key.clone(), Track::default());
            self.next_pos += 1;
            self.pos.insert(key.clone(), self.next_pos);
            moved.push(m);
        }
        self.engine.redriven(moved);
        self.pump();
        keys
    }

    /// `discardDead(keys?)`.
    pub fn discard(&mut self, keys: Option<Vec<String>>) -> Vec<String> {
        let keys = self.dead_among(keys);
        for key in &keys {
            self.storage.dead.remove(key);
            self.discarded.push(key.clone());
        }
        self.engine.discarded(keys.clone());
        self.pump();
        keys
    }

    /// The page reloads: in-flight requests are abandoned (the server may already have
    /// applied them), a new engine is built from what storage holds.
    pub fn reload(&mut self) {
        self.in_flight.clear();
        let flags = self.storage.flags.unwrap_or_default();
        self.engine = Engine::new(self.config.clone(), flags);
        let mut pending: Vec<StoredMessage> = self.storage.pending.values().cloned().collect();
        pending.sort_by_key(|m| m.seq);
        for m in &pending {
            let t = self.track.entry(m.key.clone()).or_default();
            t.failures = m.attempts;
            t.last_fail = None; // the engine keeps only the stored time, not the failure
            t.woken = false;
            t.earliest = m.next_attempt_at.unwrap_or(0);
        }
        self.engine
            .restore(pending, self.storage.dead.keys().cloned().collect());
        self.engine_online = true;
        self.paused = false; // a new page starts unpaused
        if !self.link_up {
            // The new page starts offline.
            self.engine_online = false;
            self.engine.set_online(false);
        }
        self.drain_events();
        self.pump();
    }

    // ----- time -----

    pub fn advance(&mut self, ms: Millis) {
        let to = self.now + ms;
        self.advance_to(to);
    }

    /// Runs the driver loop up to `to`, waking at every response and every
    /// `poll_timeout`, as a browser's single timer would.
    pub fn advance_to(&mut self, to: Millis) {
        self.pump();
        loop {
            let next = [self.next_response_at(), self.engine.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next else { break };
            if next > to {
                break;
            }
            if next <= self.now && self.next_response_at().is_none_or(|r| r > self.now) {
                // poll_timeout says "now" but pump() just found nothing to do: a driver
                // would spin on a zero timer.
                self.violation(format!(
                    "poll_timeout() = {next} <= now {} but poll_action() returns None",
                    self.now
                ));
                break;
            }
            self.now = self.now.max(next);
            self.pump();
        }
        self.now = self.now.max(to);
        self.pump();
    }

    /// Advances until nothing is in flight and nothing is scheduled, or `limit` ms pass.
    pub fn run_until_idle(&mut self, limit: Millis) {
        let end = self.now + limit;
        loop {
            self.pump();
            let next = [self.next_response_at(), self.engine.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => self.advance_to(t.max(self.now)),
                _ => break,
            }
            if self.in_flight.is_empty() && self.engine.poll_timeout().is_none() {
                break;
            }
        }
    }

    fn next_response_at(&self) -> Option<Millis> {
        self.in_flight.iter().map(|f| f.done_at).min()
    }

    // ----- the driver loop -----

    /// Delivers every response due by `now`, then carries out every action the engine
    /// has, until neither produces anything.
    pub fn pump(&mut self) {
        let mut steps = 0u64;
        loop {
            steps += 1;
            assert!(steps < self.max_steps, "driver loop does not settle");
            // Hand out what the last engine call queued before acting again, as the
            // browser driver does after every call.
            self.drain_events();
            if let Some(i) = self.due_response() {
                let f = self.in_flight.remove(i);
                self.complete(f);
                continue;
            }
            if let Some(action) = self.engine.poll_action(self.now) {
                self.act(action);
                continue;
            }
            break;
        }
        self.drain_events();
        self.check_nothing_overdue();
    }

    fn due_response(&self) -> Option<usize> {
        self.in_flight
            .iter()
            .enumerate()
            .filter(|(_, f)| f.done_at <= self.now)
            .min_by_key(|(_, f)| (f.done_at, f.id))
            .map(|(i, _)| i)
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Send(t) => {
                // Persist the attempt count first, then send.
                let Some(stored) = self.storage.pending.get_mut(&t.key) else {
                    self.violation(format!("Send for {} which storage does not hold", t.key));
                    return;
                };
                stored.attempts = t.attempt;
                let seq = stored.seq;
                let pos = self.pos[&t.key];
                let rec = SendRecord {
                    at: self.now,
                    key: t.key.clone(),
                    group: t.group.clone(),
                    attempt: t.attempt,
                    seq,
                    pos,
                };
                self.check_send(&rec);
                self.sends.push(rec.clone());
                let reply = if self.link_up {
                    self.server.reply_for(&t.key, &mut self.rng)
                } else {
                    Reply::NetworkError
                };
                let latency = self.rng.range(self.latency.0, self.latency.1);
                let (done_at, outcome) = match reply {
                    Reply::NetworkError => (
                        self.now + latency.min(5),
                        Outcome::NetworkError {
                            message: "Failed to fetch".into(),
                        },
                    ),
                    Reply::Timeout { applied } => {
                        self.server.requests.push(rec.clone());
                        if applied {
                            self.server.apply(&rec);
                        }
                        (self.now + self.config.request_timeout_ms, Outcome::Timeout)
                    }
                    Reply::Status(status) | Reply::RetryAfter(status, _) => {
                        self.server.requests.push(rec.clone());
                        if (200..300).contains(&status) {
                            self.server.apply(&rec);
                        }
                        let done_at = self.now + latency;
                        let retry_after = match reply {
                            Reply::RetryAfter(_, secs) => {
                                parse_retry_after(&secs.to_string(), done_at)
                            }
                            _ => None,
                        };
                        (
                            done_at,
                            Outcome::Response {
                                status,
                                class: classify_status(status),
                                retry_after,
                            },
                        )
                    }
                };
                self.next_req += 1;
                self.in_flight.push(InFlight {
                    done_at,
                    id: self.next_req,
                    key: t.key,
                    outcome,
                });
                self.max_in_flight_seen = self.max_in_flight_seen.max(self.in_flight.len());
            }
            Action::Settle(s) => {
                // Without a request the engine may only expire a message, or dead-letter one
                // whose last allowed attempt a reload interrupted.
                match &s {
                    Settlement::Dead {
                        reason: DeadReason::Expired,
                        ..
                    } => {}
                    Settlement::Dead {
                        reason: DeadReason::MaxAttempts,
                        attempts,
                        ..
                    } if *attempts == self.config.max_attempts => {}
                    _ => self.violation(format!("an unexpected send-less settlement: {s:?}")),
                }
                let key = s.key().to_string();
                self.persist(&s);
                self.engine.commit(&key);
            }
        }
    }

    fn complete(&mut self, f: InFlight) {
        let rand = self.rng.next_f64();
        let floor = match &f.outcome {
            Outcome::Response { retry_after, .. } => retry_after.unwrap_or(0),
            _ => 0,
        };
        let network = matches!(f.outcome, Outcome::NetworkError { .. });
        let Some(settlement) = self.engine.on_outcome(&f.key, f.outcome, self.now, rand) else {
            self.violation(format!(
                "on_outcome({}) returned None for a request in flight",
                f.key
            ));
            return;
        };
        self.check_settlement(&settlement);
        if let Settlement::Retry { .. } = settlement {
            let t = self.track.entry(f.key.clone()).or_default();
            t.failures += 1;
            t.last_fail = Some((self.now, floor, network));
            t.woken = false;
            t.earliest = floor; // raised by the RetryScheduled event, if one comes
        }
        self.persist(&settlement);
        self.engine.commit(&f.key);
        self.drain_events();
    }

    fn persist(&mut self, s: &Settlement) {
        match s {
            Settlement::Delivered { key, .. } => {
                if self.storage.pending.remove(key).is_none() {
                    self.violation(format!("delivered {key} which storage does not hold"));
                }
                self.delivered.push(key.clone());
            }
            Settlement::Retry {
                key,
                attempts,
                next_attempt_at,
                last_error,
            } => match self.storage.pending.get_mut(key) {
                Some(m) => {
                    m.attempts = *attempts;
                    m.next_attempt_at = *next_attempt_at;
                    m.last_error = Some(last_error.clone());
                }
                None => self.violation(format!("retry of {key} which storage does not hold")),
            },
            Settlement::Dead {
                key,
                reason,
                attempts,
                last_error,
                dead_at,
            } => match self.storage.pending.remove(key) {
                Some(mut m) => {
                    m.attempts = *attempts;
                    m.last_error = Some(last_error.clone());
                    let rec = DeadRecord {
                        message: m,
                        reason: *reason,
                        last_error: last_error.clone(),
                        dead_at: *dead_at,
                    };
                    self.storage.dead.insert(key.clone(), rec);
                }
                None => self.violation(format!("dead-lettered {key} which storage does not hold")),
            },
        }
    }

    fn drain_events(&mut self) {
        while let Some(e) = self.engine.poll_event() {
            self.check_event(&e);
            self.events.push((self.now, e));
        }
        while let Some((id, summary)) = self.engine.poll_flush_done() {
            self.flush_done.insert(id, summary);
        }
    }

    // ----- checks made while running -----

    fn violation(&mut self, v: String) {
        self.violations.push(format!("t=+{}ms: {v}", self.now - T0));
    }

    fn check_send(&mut self, r: &SendRecord) {
        let max = self.config.max_attempts;
        if r.attempt == 0 || r.attempt > max {
            self.violation(format!(
                "{} sent as attempt {} (maxAttempts {max})",
                r.key, r.attempt
            ));
        }
        if self.in_flight.iter().any(|f| f.key == r.key) {
            self.violation(format!(
                "{} sent while a request for it is in flight",
                r.key
            ));
        }
        if self.in_flight.len() >= self.config.concurrency {
            self.violation(format!(
                "{} sent with {} already in flight",
                r.key,
                self.in_flight.len()
            ));
        }
        if let Some(g) = &r.group {
            if let Some(older) = self
                .storage
                .pending
                .values()
                .find(|m| m.group.as_ref() == Some(g) && self.pos[&m.key] < r.pos)
            {
                self.violation(format!(
                    "{} (group {g}) sent before older pending {}",
                    r.key, older.key
                ));
            }
        }
        let earliest = self.track.get(&r.key).map_or(0, |t| t.earliest);
        if r.at < earliest {
            let history = self.history(&r.key);
            self.violation(format!(
                "{} sent at +{} before its earliest time +{}; its history:\n{history}",
                r.key,
                r.at - T0,
                earliest.saturating_sub(T0)
            ));
        }
        let stored = &self.storage.pending[&r.key];
        if self.now.saturating_sub(stored.active_since) >= self.config.max_age_ms {
            self.violation(format!("{} sent after maxAgeMs", r.key));
        }
    }

    fn check_settlement(&mut self, s: &Settlement) {
        let max = self.config.max_attempts;
        match s {
            Settlement::Retry { key, attempts, .. } if *attempts >= max => {
                self.violation(format!(
                    "{key} kept for retry with {attempts} >= maxAttempts attempts"
                ));
            }
            Settlement::Dead {
                key,
                reason: DeadReason::MaxAttempts,
                attempts,
                ..
            } if *attempts != max => {
                self.violation(format!(
                    "{key} dead max-attempts with {attempts} attempts (max {max})"
                ));
            }
            _ => {}
        }
    }

    fn check_event(&mut self, e: &Event) {
        let Event::RetryScheduled { key, at, delay_ms } = e else {
            return;
        };
        let Some(t) = self.track.get(key).cloned() else {
            self.violation(format!("RetryScheduled for unknown {key}"));
            return;
        };
        let Some((failed_at, floor, network)) = t.last_fail else {
            // Restored and not failed since: it keeps its stored time.
            self.track.get_mut(key).expect("present").earliest = *at;
            return;
        };
        let flags = self.engine.flags();
        let max_delay = self.config.max_delay_ms;
        let woken = network && t.earliest == 0 && *at <= self.now;
        if !woken {
            // Upper bound: the backoff never exceeds maxDelayMs unless Retry-After says more.
            if *at > (failed_at + max_delay).max(floor) {
                self.violation(format!(
                    "{key} scheduled at +{} > max(failure +{} + maxDelay {max_delay}, Retry-After +{})",
                    at - T0, failed_at - T0, floor.saturating_sub(T0)
                ));
            }
            if *at < floor {
                self.violation(format!(
                    "{key} scheduled at +{} before its Retry-After +{}",
                    at - T0,
                    floor - T0
                ));
            }
            if *delay_ms > max_delay.max(floor.saturating_sub(failed_at)) {
                self.violation(format!("{key} delay_ms {delay_ms} over maxDelay {max_delay} with no Retry-After asking for it"));
            }
            // With the flags of the moment, the wait follows the schedule's band exactly.
            let b = backoff(flags.retry_interval_ms, max_delay, t.failures);
            let (lo, hi) = match self.config.jitter {
                Jitter::None => (b, b),
                Jitter::Equal => (b / 2, b),
                Jitter::Full => (0, b),
            };
            let lo_at = (failed_at + lo).max(floor);
            let hi_at = (failed_at + hi).max(floor);
            if !(lo_at..=hi_at).contains(at) {
                self.violation(format!(
                    "{key} retry {} scheduled {} ms after its failure; the schedule allows {}..={} (floor +{})",
                    t.failures, at.saturating_sub(failed_at), lo_at - failed_at, hi_at - failed_at, floor.saturating_sub(T0)
                ));
            }
        }
        self.track.get_mut(key).expect("present").earliest = *at;
    }

    /// After the driver loop settles, nothing may be overdue: every idle group head that
    /// is due must have been sent, unless offline or all slots are busy.
    fn check_nothing_overdue(&mut self) {
        if !self.engine_online || self.paused || self.in_flight.len() >= self.config.concurrency {
            return;
        }
        // Keyed by (grouped?, group or key), so a key never collides with a group name.
        let mut heads: HashMap<(bool, &str), &StoredMessage> = HashMap::new();
        let mut overdue = Vec::new();
        for m in self.storage.pending.values() {
            match &m.group {
                None => {
                    heads.insert((false, m.key.as_str()), m);
                }
                Some(g) => {
                    let e = heads.entry((true, g.as_str())).or_insert(m);
                    if self.pos[&m.key] < self.pos[&e.key] {
                        *e = m;
                    }
                }
            }
        }
        for m in heads.values() {
            if self.in_flight.iter().any(|f| f.key == m.key) {
                continue;
            }
            let t = self.track.get(&m.key).cloned().unwrap_or_default();
            let due = match self.engine.view(&m.key).and_then(|v| v.next_attempt_at) {
                _ if t.woken && self.engine.flags().retry_enabled => Some(0),
                Some(at) => Some(at),
                // Never failed since it was queued or loaded: due at its stored time.
                None if t.failures == 0 => Some(m.next_attempt_at.unwrap_or(0)),
                None if self.engine.flags().retry_enabled => {
                    overdue.push(format!(
                        "{} failed, retries are on, yet it is not scheduled",
                        m.key
                    ));
                    None
                }
                None => None, // parked: failed with retries off
            };
            if let Some(due) = due {
                if due <= self.now {
                    overdue.push(format!(
                        "{} is due since +{} but was not sent",
                        m.key,
                        due.saturating_sub(T0)
                    ));
                }
            }
        }
        for v in overdue {
            self.violation(v);
        }
    }

    /// The engine and the simulated storage agree on what is pending and dead.
    pub fn check_agreement(&self) -> Result<(), String> {
        let stats = self.engine.stats(self.now);
        if stats.pending != self.storage.pending.len() {
            return Err(format!(
                "engine has {} pending, storage {}",
                stats.pending,
                self.storage.pending.len()
            ));
        }
        if stats.dead != self.storage.dead.len() {
            return Err(format!(
                "engine has {} dead, storage {}",
                stats.dead,
                self.storage.dead.len()
            ));
        }
        if stats.in_flight != self.in_flight.len() {
            return Err(format!(
                "engine has {} in flight, the network {}",
                stats.in_flight,
                self.in_flight.len()
            ));
        }
        for (key, m) in &self.storage.pending {
            let Some(v) = self.engine.view(key) else {
                return Err(format!(
                    "{key} is pending in storage, unknown to the engine"
                ));
            };
            let flying = self.in_flight.iter().any(|f| &f.key == key);
            if v.in_flight != flying {
                return Err(format!(
                    "{key}: engine in_flight={}, network {flying}",
                    v.in_flight
                ));
            }
            if m.attempts > self.config.max_attempts {
                return Err(format!("{key} stored with {} attempts", m.attempts));
            }
            // What the engine would write for it now. `next_attempt_at` is left out: the
            // driver persists it with each settlement, and a flags change or `online`
            // moves it in the engine without a write.
            let Some(e) = self.engine.stored(key) else {
                return Err(format!(
                    "engine.stored({key}) is None for a pending message"
                ));
            };
            // While a request is out, the engine still reports the attempts before it; the
            // driver persisted `Transmit::attempt`, one more.
            let attempts = if v.in_flight {
                e.attempts + 1
            } else {
                e.attempts
            };
            let mine = StoredMessage {
                next_attempt_at: None,
                ..m.clone()
            };
            let theirs = StoredMessage {
                next_attempt_at: None,
                attempts,
                ..e
            };
            if mine != theirs {
                return Err(format!(
                    "{key}: storage has {mine:?}, the engine {theirs:?}"
                ));
            }
        }
        for key in self.storage.dead.keys() {
            if !self.engine.is_dead(key) {
                return Err(format!("{key} is dead in storage, not in the engine"));
            }
        }
        Ok(())
    }

    // ----- reading results -----

    /// What happened to one key, for failure messages.
    pub fn history(&self, key: &str) -> String {
        let mut lines = Vec::new();
        for (t, e) in &self.events {
            let mine = match e {
                Event::Enqueued { key: k, .. }
                | Event::Sending { key: k, .. }
                | Event::Delivered { key: k, .. }
                | Event::AttemptFailed { key: k, .. }
                | Event::RetryScheduled { key: k, .. }
                | Event::DeadLettered { key: k, .. }
                | Event::Redriven { key: k }
                | Event::Discarded { key: k } => k == key,
                Event::StorageFailed { key: k, .. } => k.as_deref() == Some(key),
                Event::Online
                | Event::Offline
                | Event::FlagsChanged { .. }
                | Event::SenderChanged { .. } => true,
            };
            if mine {
                let e = format!("{e:?}").replace(&(T0 / 1000).to_string(), "T0/1000~");
                lines.push(format!("  +{}: {e}", t - T0));
            }
        }
        lines.join("\n")
    }

    pub fn is_pending(&self, key: &str) -> bool {
        self.storage.pending.contains_key(key)
    }

    pub fn dead(&self, key: &str) -> Option<&DeadRecord> {
        self.storage.dead.get(key)
    }

    pub fn sends_of(&self, key: &str) -> Vec<&SendRecord> {
        self.sends.iter().filter(|s| s.key == key).collect()
    }

    pub fn send_times(&self, key: &str) -> Vec<Millis> {
        self.sends_of(key).iter().map(|s| s.at - T0).collect()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Events matching a predicate, without their times.
    pub fn events_where(&self, f: impl Fn(&Event) -> bool) -> Vec<Event> {
        self.events
            .iter()
            .filter(|(_, e)| f(e))
            .map(|(_, e)| e.clone())
            .collect()
    }

    pub fn assert_clean(&self) {
        assert!(
            self.violations.is_empty(),
            "violations:\n{}",
            self.violations.join("\n")
        );
        if let Err(e) = self.check_agreement() {
            panic!("engine and storage disagree: {e}");
        }
    }
}

/// The schedule as the issue states it: retry n waits min(maxDelay, interval * 2^(n-1)).
pub fn backoff(interval: u64, max_delay: u64, n: u32) -> u64 {
    let mut wait = interval;
    for _ in 1..n.max(1) {
        wait = wait.saturating_mul(2);
        if wait >= max_delay {
            break;
        }
    }
    wait.min(max_delay)
}

/// A config for tests: jitter off, small numbers.
pub fn config(max_attempts: u32, concurrency: usize) -> Config {
    Config {
        max_attempts,
        concurrency,
        jitter: Jitter::None,
        max_delay_ms: 60_000,
        ..Config::default()
    }
}

pub fn flags(retry_enabled: bool, retry_interval_ms: u64) -> Flags {
    Flags {
        retry_enabled,
        retry_interval_ms,
    }
}
