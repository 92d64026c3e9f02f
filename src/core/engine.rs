//! The outbox state machine.
//!
//! It knows every pending message's metadata (never its payload: that stays in storage)
//! and the keys of the dead letters. It decides what to send next and what an outcome
//! means; the driver does the I/O. Every change to storage happens in two phases: the
//! engine hands out a [`Settlement`] to persist, the driver persists it, then calls
//! [`Engine::commit`]. Only then does the engine change state and queue events, so a
//! listener that reacts to an event and reads storage sees what the event says.
//!
//! A message's life: admitted (its key reserved) → committed (pending, idle) → in flight →
//! settling → delivered (gone), idle again (retry), or dead.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use super::config::{Config, Flags, FlagsPatch};
use super::error::{ErrorCode, OutboxError};
use super::event::{DeadReason, Event, LastError};
use super::fifo::Fifo;
use super::key::{new_key, validate_key, MAX_KEY_LEN};
use super::ordered_set::OrderedSet;
use super::outcome::{Class, Outcome};
use super::schedule::retry_delay;
use super::text::{concat, decimal};
use super::Millis;

/// A message's metadata as storage keeps it; what the engine is restored from.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    /// The idempotency key.
    pub key: String,
    /// Position in the outbox: lower is older. Orders messages of a group.
    pub seq: u64,
    /// The ordering group, if any.
    pub group: Option<String>,
    /// When the message was enqueued.
    pub created_at: Millis,
    /// Where the `maxAgeMs` clock starts: enqueue time, or the last redrive.
    pub active_since: Millis,
    /// Counted attempts so far.
    pub attempts: u32,
    /// The earliest time of the next automatic attempt, if one was scheduled.
    pub next_attempt_at: Option<Millis>,
    /// The last failure, if any.
    pub last_error: Option<LastError>,
    /// Size of the payload's JSON, for batch byte budgets.
    pub bytes: u32,
}

/// A message accepted by [`Engine::admit`]: its key is reserved until it is committed
/// or aborted.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    /// The idempotency key (given or generated).
    pub key: String,
    /// Its place in the outbox.
    pub seq: u64,
    /// Its ordering group.
    pub group: Option<String>,
    /// The enqueue time.
    pub created_at: Millis,
    /// Size of the payload's JSON (set by the driver, which encodes it).
    pub bytes: u32,
}

impl Admitted {
    /// The record to store for it.
    pub fn stored(&self) -> StoredMessage {
        StoredMessage {
            key: self.key.clone(),
            seq: self.seq,
            group: self.group.clone(),
            created_at: self.created_at,
            active_since: self.created_at,
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
            bytes: self.bytes,
        }
    }
}

/// A request the driver should send, after persisting `attempts = attempt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The idempotency key, sent as the `Idempotency-Key` header.
    pub key: String,
    /// The message's ordering group.
    pub group: Option<String>,
    /// The 1-based number of this attempt among counted attempts.
    pub attempt: u32,
    /// The request carrying it: several transmits share one in a batch.
    pub request: RequestId,
    /// Size of the payload's JSON.
    pub bytes: u32,
}

/// A change to persist: the outcome of a message, decided by the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    /// Remove the message from pending storage.
    Delivered {
        key: String,
        attempts: u32,
        status: u16,
    },
    /// Keep it pending with new attempts, schedule and last error.
    Retry {
        key: String,
        attempts: u32,
        next_attempt_at: Option<Millis>,
        last_error: LastError,
    },
    /// Move it from pending storage to the dead-letter store.
    Dead {
        key: String,
        reason: DeadReason,
        attempts: u32,
        last_error: LastError,
        dead_at: Millis,
    },
}

impl Settlement {
    /// The message the settlement is about.
    pub fn key(&self) -> &str {
        match self {
            Settlement::Delivered { key, .. }
            | Settlement::Retry { key, .. }
            | Settlement::Dead { key, .. } => key,
        }
    }
}

/// What the driver should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Persist the attempt count, then send.
    Send(Transmit),
    /// Persist a settlement that needs no request (an expired message), then commit it.
    Settle(Settlement),
}

/// Identifies one request (a single send, or a batch).
pub type RequestId = u64;

/// Identifies one `flush()` call.
pub type FlushId = u64;

/// What one `flush()` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushSummary {
    /// Requests sent.
    pub attempted: u32,
    /// Messages delivered.
    pub delivered: u32,
    /// Attempts that failed and left the message pending.
    pub failed: u32,
    /// Messages moved to the dead-letter store.
    pub dead: u32,
}

/// Counts for a status display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Messages not yet delivered or dead, in flight included.
    pub pending: usize,
    /// Requests in flight.
    pub in_flight: usize,
    /// Messages in the dead-letter store.
    pub dead: usize,
    /// Age of the oldest pending message, if any.
    pub oldest_pending_age_ms: Option<Millis>,
    /// Requests sent since this outbox was opened.
    pub attempts: u64,
    /// Messages delivered since this outbox was opened.
    pub delivered: u64,
    /// Whether the browser last said it was online.
    pub online: bool,
    /// Whether this engine sends (one tab per outbox does); the others mirror it.
    pub sender: bool,
}

/// A pending message's live status, for listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryView {
    /// A request for it is out (or its outcome is being recorded).
    pub in_flight: bool,
    /// When it will next be sent automatically, if it is scheduled.
    pub next_attempt_at: Option<Millis>,
}

/// Where a pending message stands: its stored `seq`, then a tie-break drawn from its
/// key. Two tabs can pick the same `seq` in the same millisecond; the tie-break keeps
/// their messages distinct and in the same order in every tab. `slot` says where its
/// entry is in [`Entries`] (or, in a [`KeyMap`]'s index, where its key is); it orders
/// nothing that `seq` and `tie` do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Pos {
    seq: u64,
    tie: u64,
    slot: u32,
}

/// Below every position: where range scans start.
const FIRST: Pos = Pos {
    seq: 0,
    tie: 0,
    slot: 0,
};

impl Pos {
    fn of(seq: u64, key: &str, slot: u32) -> Pos {
        let tie = fnv(key);
        Pos { seq, tie, slot }
    }
}

/// FNV-1a: stable across tabs and sessions, unlike std's randomly seeded hasher.
fn fnv(text: &str) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for b in text.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    hash
}

/// Values in reusable numbered slots: the storage under [`Entries`] and [`KeyMap`].
struct Slots<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            items: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slots<T> {
    /// The slot the next [`Slots::put`] fills.
    fn vacant(&self) -> u32 {
        match self.free.last() {
            Some(&slot) => slot,
            None => self.items.len() as u32,
        }
    }

    /// Stores `value` in the slot [`Slots::vacant`] names, and returns that slot.
    fn put(&mut self, value: T) -> u32 {
        let slot = self.vacant();
        if slot as usize == self.items.len() {
            self.items.push(None);
        } else {
            self.free.pop();
        }
        self.items[slot as usize] = Some(value);
        slot
    }

    fn take(&mut self, slot: u32) -> Option<T> {
        let value = self.items.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        Some(value)
    }

    fn get(&self, slot: u32) -> Option<&T> {
        self.items.get(slot as usize)?.as_ref()
    }

    fn get_mut(&mut self, slot: u32) -> Option<&mut T> {
        self.items.get_mut(slot as usize)?.as_mut()
    }
}

/// The pending messages: entries in reusable slots, with their positions in order.
/// Slots and a set keyed like `Engine::ready`, not a map from `Pos` to `Entry`: that
/// would be a second ordered collection type, with its own code in the wasm module.
#[derive(Default)]
struct Entries {
    slots: Slots<(Pos, Entry)>,
    /// `(0, pos)` for every entry; the 0 gives it `ready`'s key type.
    order: OrderedSet<(u64, Pos)>,
}

impl Entries {
    /// The slot the next [`Entries::insert`] should use.
    fn vacant(&self) -> u32 {
        self.slots.vacant()
    }

    /// Stores an entry at `pos`, whose slot came from [`Entries::vacant`].
    fn insert(&mut self, pos: Pos, entry: Entry) {
        let slot = self.slots.put((pos, entry));
        debug_assert_eq!(slot, pos.slot, "the slot from `vacant`");
        self.order.insert((0, pos));
    }

    fn remove(&mut self, pos: &Pos) -> Option<Entry> {
        let (_, entry) = self.slots.take(pos.slot)?;
        self.order.remove(&(0, *pos));
        Some(entry)
    }

    /// The position of the entry in `slot`, if there is one.
    fn pos_at(&self, slot: u64) -> Option<Pos> {
        Some(self.slots.get(u32::try_from(slot).ok()?)?.0)
    }

    fn get_mut(&mut self, pos: &Pos) -> Option<&mut Entry> {
        Some(&mut self.slots.get_mut(pos.slot)?.1)
    }

    /// Every position, in order. (Loops here and below, not iterator chains: each
    /// `collect()` of an adapter chain is a copy of its own in the wasm module.)
    fn positions(&self) -> Vec<Pos> {
        let mut positions = Vec::with_capacity(self.order.len());
        for &(_, pos) in &self.order {
            positions.push(pos);
        }
        positions
    }

    /// When the oldest entry was created.
    fn oldest(&self) -> Option<Millis> {
        let mut oldest = None;
        for (_, entry) in self.slots.items.iter().flatten() {
            if oldest.is_none_or(|t| entry.created_at < t) {
                oldest = Some(entry.created_at);
            }
        }
        oldest
    }

    fn len(&self) -> usize {
        self.order.len()
    }

    fn clear(&mut self) {
        *self = Entries::default();
    }
}

// Every `entries[&pos]` panics with the same message at the same place: one panic site
// in the wasm module instead of one per `expect`.
impl core::ops::Index<&Pos> for Entries {
    type Output = Entry;

    fn index(&self, pos: &Pos) -> &Entry {
        let (_, entry) = self.slots.get(pos.slot).expect("a known entry");
        entry
    }
}

impl core::ops::IndexMut<&Pos> for Entries {
    fn index_mut(&mut self, pos: &Pos) -> &mut Entry {
        let (_, entry) = self.slots.get_mut(pos.slot).expect("a known entry");
        entry
    }
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Idle,
    InFlight {
        attempt: u32,
        request: RequestId,
    },
    /// Waiting for the driver to persist the settlement; `request` is the request that
    /// carried it, whose concurrency slot it still holds (none for an expiry).
    Settling {
        settlement: Settlement,
        request: Option<RequestId>,
    },
}

/// When an idle message may go out again.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Wait {
    /// When the last failure happened; `None` for a fresh or reloaded message.
    failed_at: Option<Millis>,
    /// The jitter sample, kept so that a flags change recomputes the same spread.
    rand: f64,
    /// A floor from `Retry-After`, or from storage after a reload.
    not_before: Millis,
    /// The last failure was a network failure: the `online` event wakes it.
    network: bool,
}

const FRESH: Wait = Wait {
    failed_at: None,
    rand: 0.0,
    not_before: 0,
    network: false,
};

impl Wait {
    /// The wait of a message read back from storage: its stored next attempt, if any.
    fn reloaded(next_attempt_at: Option<Millis>) -> Wait {
        Wait {
            not_before: next_attempt_at.unwrap_or(0),
            ..FRESH
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    group: Option<String>,
    created_at: Millis,
    active_since: Millis,
    attempts: u32,
    /// All failures since it was (re)queued, counted or not: the backoff exponent.
    failures: u32,
    state: State,
    wait: Wait,
    /// A `flush()` wants it sent now, whatever the backoff or the retry flag say.
    forced: bool,
    /// Its key in `Engine::ready`, when it is there.
    armed: Option<Millis>,
    last_error: Option<LastError>,
    bytes: u32,
}

impl Entry {
    /// A stored message as an idle entry, not yet armed.
    fn idle(m: StoredMessage, wait: Wait) -> Entry {
        Entry {
            key: m.key,
            group: m.group,
            created_at: m.created_at,
            active_since: m.active_since,
            attempts: m.attempts,
            failures: m.attempts,
            state: State::Idle,
            wait,
            forced: false,
            armed: None,
            last_error: m.last_error,
            bytes: m.bytes,
        }
    }
}

/// A map from strings to numbers, for every index by key string (sets too: their values
/// are unused `0`s). Not a `BTreeMap<String, u64>`: that would bring std's B-tree code
/// into the wasm module. Here the strings sit in reusable slots and the index is
/// `(hash, slot)` pairs in the set type `ready` uses; strings of equal hashes are told
/// apart by comparison.
#[derive(Default)]
struct KeyMap {
    slots: Slots<(String, u64)>,
    /// `(fnv(key), Pos { slot, .. })` for every key; `seq` and `tie` are 0.
    index: OrderedSet<(u64, Pos)>,
}

impl KeyMap {
    /// The index entry of the key in `slot`.
    fn entry(key: &str, slot: u32) -> (u64, Pos) {
        (fnv(key), Pos { slot, ..FIRST })
    }

    /// The slot that holds `key`, if any.
    fn find(&self, key: &str) -> Option<u32> {
        let hash = fnv(key);
        for &(h, pos) in self.index.range_from(&(hash, FIRST)) {
            if h != hash {
                break;
            }
            if let Some((k, _)) = self.slots.get(pos.slot) {
                if k == key {
                    return Some(pos.slot);
                }
            }
        }
        None
    }

    fn get(&self, key: &str) -> Option<&u64> {
        let (_, value) = self.slots.get(self.find(key)?)?;
        Some(value)
    }

    fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_some()
    }

    /// Sets `key`'s value; returns the one it replaced.
    fn insert(&mut self, key: String, value: u64) -> Option<u64> {
        if let Some(slot) = self.find(&key) {
            let (_, old) = self.slots.get_mut(slot)?;
            return Some(core::mem::replace(old, value));
        }
        self.index.insert(KeyMap::entry(&key, self.slots.vacant()));
        self.slots.put((key, value));
        None
    }

    fn remove(&mut self, key: &str) -> Option<u64> {
        let slot = self.find(key)?;
        self.index.remove(&KeyMap::entry(key, slot));
        let (_, value) = self.slots.take(slot)?;
        Some(value)
    }

    /// Every key, in no particular order.
    fn keys(&self) -> Vec<String> {
        let mut keys = Vec::with_capacity(self.index.len());
        for (key, _) in self.slots.items.iter().flatten() {
            keys.push(key.clone());
        }
        keys
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn clear(&mut self) {
        *self = KeyMap::default();
    }
}

struct Flush {
    id: FlushId,
    /// The keys this flush still waits for.
    remaining: KeyMap,
    summary: FlushSummary,
}

/// The sans-IO outbox. See the module docs for the protocol between it and a driver.
pub struct Engine {
    config: Config,
    flags: Flags,
    online: bool,
    paused: bool,
    sender: bool,
    next_seq: u64,
    entries: Entries,
    /// Each pending message's slot in `entries`.
    by_key: KeyMap,
    /// The number of each group with pending messages, for `grouped`.
    group_ids: KeyMap,
    next_group: u64,
    /// Pending messages of every group, by group number then position, so a group's head
    /// (its oldest) comes first among its own. Keyed like `ready` so that the two share
    /// one set type's code in the wasm module.
    grouped: OrderedSet<(u64, Pos)>,
    /// Idle group heads that may be sent, by due time: the only candidates for sending.
    ready: OrderedSet<(Millis, Pos)>,
    /// Admitted keys not yet committed (a set).
    reserved: KeyMap,
    /// The dead letters' keys (a set).
    dead: KeyMap,
    /// Messages holding a concurrency slot (in flight, or settling after a send), by
    /// request. Keyed like `ready` to share its code.
    sending: OrderedSet<(RequestId, Pos)>,
    /// Requests in flight: each holds one concurrency slot until all its messages settled.
    requests: usize,
    next_request: RequestId,
    attempts: u64,
    delivered: u64,
    events: Fifo<Event>,
    flushes: Vec<Flush>,
    flushes_done: Fifo<(FlushId, FlushSummary)>,
    next_flush: FlushId,
}

impl Engine {
    /// A new, empty engine. Restore stored messages with [`Engine::restore`].
    pub fn new(config: Config, flags: Flags) -> Self {
        Engine {
            config,
            flags,
            online: true,
            paused: false,
            sender: true,
            next_seq: 1,
            entries: Entries::default(),
            by_key: KeyMap::default(),
            group_ids: KeyMap::default(),
            next_group: 0,
            grouped: OrderedSet::new(),
            ready: OrderedSet::new(),
            reserved: KeyMap::default(),
            dead: KeyMap::default(),
            sending: OrderedSet::new(),
            requests: 0,
            next_request: 1,
            attempts: 0,
            delivered: 0,
            events: Fifo::default(),
            flushes: Vec::new(),
            flushes_done: Fifo::default(),
            next_flush: 1,
        }
    }

    /// The validated options.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current flags.
    pub fn flags(&self) -> Flags {
        self.flags
    }

    /// Loads what storage holds into a new (or [`Engine::resync`]-cleared) engine, at
    /// open. Queues no events.
    pub fn restore(&mut self, pending: Vec<StoredMessage>, dead_keys: Vec<String>) {
        debug_assert!(self.entries.len() == 0, "restore fills an empty engine");
        for key in dead_keys {
            self.dead.insert(key, 0);
        }
        // The heads are armed once at the end, not every group's head after each
        // insert as `insert` does. Oldest first, as storage lists them: each message
        // lands after every position `entries.order` holds.
        // Room for all at once: grown by doubling, the vectors would leave the wasm
        // memory (which never shrinks) up to twice as large.
        self.entries.slots.items.reserve(pending.len());
        self.by_key.slots.items.reserve(pending.len());
        for m in pending {
            self.next_seq = self.next_seq.max(m.seq + 1);
            let wait = Wait::reloaded(m.next_attempt_at);
            self.place(m, wait);
        }
        // The heads: every message without a group, and each group's oldest.
        let mut heads = Vec::new();
        for (pos, entry) in self.entries.slots.items.iter().flatten() {
            if entry.group.is_none() {
                heads.push(*pos);
            }
        }
        let mut last = None;
        for &(id, pos) in &self.grouped {
            if last != Some(id) {
                last = Some(id);
                heads.push(pos);
            }
        }
        for pos in heads {
            self.arm(pos);
        }
    }

    /// Checks a new message and reserves its key. Nothing is stored yet: the driver
    /// writes it, then calls [`Engine::commit_admitted`] (or [`Engine::abort_admitted`]).
    pub fn admit(
        &mut self,
        key: Option<String>,
        group: Option<String>,
        now: Millis,
        random: [u8; 10],
    ) -> Result<Admitted, OutboxError> {
        let key = match key {
            Some(key) => {
                validate_key(&key)?;
                key
            }
            None => new_key(now, random),
        };
        if let Some(g) = &group {
            if g.is_empty() || g.len() > MAX_KEY_LEN {
                return Err(OutboxError::new(
                    ErrorCode::InvalidGroup,
                    concat(&[
                        "a group must be 1 to ",
                        &decimal(MAX_KEY_LEN as u64),
                        " bytes long",
                    ]),
                ));
            }
        }
        if self.by_key.contains_key(&key) || self.reserved.contains_key(&key) {
            return Err(OutboxError::new(
                ErrorCode::DuplicateKey,
                concat(&[&key, " is already pending"]),
            ));
        }
        if self.dead.contains_key(&key) {
            return Err(OutboxError::new(
                ErrorCode::DuplicateKey,
                concat(&[
                    &key,
                    " is in the dead-letter store; retry or discard it there",
                ]),
            ));
        }
        let seq = self.allocate_seq(now);
        self.reserved.insert(key.clone(), 0);
        Ok(Admitted {
            key,
            seq,
            group,
            created_at: now,
            bytes: 0,
        })
    }

    /// The admitted message is committed to storage: it becomes pending.
    pub fn commit_admitted(&mut self, admitted: Admitted) {
        if self.reserved.remove(&admitted.key).is_none() {
            return;
        }
        self.events.push(Event::Enqueued {
            key: admitted.key.clone(),
            group: admitted.group.clone(),
        });
        self.insert(admitted.stored(), FRESH);
    }

    /// Storing the admitted message failed: release its key.
    pub fn abort_admitted(&mut self, key: &str) {
        self.reserved.remove(key);
    }

    /// A fresh position for a message: after every other, and after `now` in
    /// microsecond-ish units so positions stay ordered across reloads and tabs.
    pub fn allocate_seq(&mut self, now: Millis) -> u64 {
        let seq = self.next_seq.max(now.saturating_mul(1024));
        self.next_seq = seq + 1;
        seq
    }

    /// The next thing to do at `now`, if any. Call until it returns `None`.
    pub fn poll_action(&mut self, now: Millis) -> Option<Action> {
        if !self.sender {
            return None;
        }
        let &(due, pos) = self.ready.first()?;
        if due > now {
            return None;
        }
        let entry = &self.entries[&pos];
        if self.gated() && !entry.forced {
            return None; // forced entries sort first (due 0), so none are behind this one
        }
        if now.saturating_sub(entry.active_since) >= self.config.max_age_ms {
            let message = concat(&[
                "not delivered within maxAgeMs (",
                &decimal(self.config.max_age_ms),
                " ms)",
            ]);
            return Some(self.dead_without_sending(pos, DeadReason::Expired, message, now));
        }
        if entry.attempts >= self.config.max_attempts {
            // Only a reload can get here: the last allowed attempt was persisted and sent,
            // then the page went away before its outcome was recorded. That attempt counts
            // (it was persisted before the request went out), so the cap is used up: sending
            // again would make attempt maxAttempts + 1.
            let message = concat(&[
                "the last of maxAttempts (",
                &decimal(self.config.max_attempts.into()),
                ") attempts was interrupted before its outcome was recorded",
            ]);
            return Some(self.dead_without_sending(pos, DeadReason::MaxAttempts, message, now));
        }
        if self.requests >= self.config.concurrency {
            return None;
        }
        let request = self.next_request;
        self.next_request += 1;
        Some(Action::Send(self.start_sending(pos, request)))
    }

    /// After an [`Action::Send`], another due message to carry in the same request (a
    /// batch), if one fits in `max_bytes` of payload. Messages of one group never share a
    /// request: only a group's oldest message is ever due. Expired messages are left for
    /// [`Engine::poll_action`].
    pub fn poll_more(
        &mut self,
        now: Millis,
        request: RequestId,
        max_bytes: u64,
    ) -> Option<Transmit> {
        if !self.sender || !self.is_sending(request) {
            return None;
        }
        let &(due, pos) = self.ready.first()?;
        let entry = &self.entries[&pos];
        if due > now
            || (self.gated() && !entry.forced)
            || now.saturating_sub(entry.active_since) >= self.config.max_age_ms
            || entry.attempts >= self.config.max_attempts
            || u64::from(entry.bytes) > max_bytes
        {
            return None;
        }
        Some(self.start_sending(pos, request))
    }

    fn start_sending(&mut self, pos: Pos, request: RequestId) -> Transmit {
        self.disarm(pos);
        if !self.is_sending(request) {
            self.requests += 1;
        }
        self.sending.insert((request, pos));
        let entry = &mut self.entries[&pos];
        let attempt = entry.attempts.saturating_add(1);
        entry.state = State::InFlight { attempt, request };
        entry.forced = false;
        self.attempts += 1;
        let transmit = Transmit {
            key: entry.key.clone(),
            group: entry.group.clone(),
            attempt,
            request,
            bytes: entry.bytes,
        };
        self.events.push(Event::Sending {
            key: transmit.key.clone(),
            attempt,
        });
        for flush in &mut self.flushes {
            if flush.remaining.contains_key(&transmit.key) {
                flush.summary.attempted += 1;
            }
        }
        transmit
    }

    /// A message left pending because the server has it: by this engine's send, or
    /// (mirrored) by another tab's.
    fn delivered_here(&mut self, pos: Pos, key: String, attempts: u32, status: u16) {
        let group = self.entries[&pos].group.clone();
        self.remove(pos);
        self.delivered += 1;
        self.events.push(Event::Delivered {
            key,
            group,
            attempts,
            status,
        });
    }

    /// Dead-letters a due message without a request (expired, or its cap used up).
    fn dead_without_sending(
        &mut self,
        pos: Pos,
        reason: DeadReason,
        message: String,
        now: Millis,
    ) -> Action {
        self.disarm(pos);
        let entry = &mut self.entries[&pos];
        let settlement = Settlement::Dead {
            key: entry.key.clone(),
            reason,
            attempts: entry.attempts,
            last_error: LastError {
                status: None,
                message,
            },
            dead_at: now,
        };
        entry.state = State::Settling {
            settlement: settlement.clone(),
            request: None,
        };
        Action::Settle(settlement)
    }

    /// Whether messages of `request` are still unsettled.
    fn is_sending(&self, request: RequestId) -> bool {
        let first = (request, FIRST);
        self.sending
            .range_from(&first)
            .next()
            .is_some_and(|&(r, _)| r == request)
    }

    /// The message at `pos` of `request` settled: free the request's slot once all have.
    fn release(&mut self, request: RequestId, pos: Pos) {
        if self.sending.remove(&(request, pos)) && !self.is_sending(request) {
            self.requests -= 1;
        }
    }

    /// Where the pending message `key` is, if it is pending.
    fn pos_of(&self, key: &str) -> Option<Pos> {
        self.entries.pos_at(*self.by_key.get(key)?)
    }

    /// When the driver should next call [`Engine::poll_action`], if nothing else happens
    /// first. The driver re-arms its one timer only when this changes.
    pub fn poll_timeout(&self) -> Option<Millis> {
        if !self.sender {
            return None;
        }
        let &(due, pos) = self.ready.first()?;
        if self.gated() && !self.entries[&pos].forced {
            return None;
        }
        if self.requests >= self.config.concurrency {
            return None; // a finishing request frees a slot and the driver polls again
        }
        Some(due)
    }

    /// Records the outcome of an attempt and returns the settlement to persist, or
    /// `None` if the key is not in flight (for example after a crash-restore race).
    pub fn on_outcome(
        &mut self,
        key: &str,
        outcome: Outcome,
        now: Millis,
        rand: f64,
    ) -> Option<Settlement> {
        let pos = self.pos_of(key)?;
        let max_attempts = self.config.max_attempts;
        let entry = self.entries.get_mut(&pos)?;
        let State::InFlight { attempt, .. } = entry.state else {
            return None;
        };
        let (counted, last_error, retry_after) = match outcome {
            Outcome::Response {
                status,
                class: Class::Delivered,
                ..
            } => {
                return Some(settle_sent(
                    entry,
                    Settlement::Delivered {
                        key: key.into(),
                        attempts: attempt,
                        status,
                    },
                ));
            }
            Outcome::Response {
                status,
                class: Class::Permanent,
                ..
            } => {
                let last_error = LastError {
                    status: Some(status),
                    message: concat(&["rejected with HTTP ", &decimal(status.into())]),
                };
                let dead = Settlement::Dead {
                    key: key.into(),
                    reason: DeadReason::Rejected,
                    attempts: attempt,
                    last_error,
                    dead_at: now,
                };
                return Some(settle_sent(entry, dead));
            }
            Outcome::Response {
                status,
                class: Class::Transient,
                retry_after,
            } => (
                true,
                LastError {
                    status: Some(status),
                    message: concat(&["HTTP ", &decimal(status.into())]),
                },
                retry_after,
            ),
            Outcome::Timeout => {
                let message = concat(&[
                    "no answer within requestTimeoutMs (",
                    &decimal(self.config.request_timeout_ms),
                    " ms)",
                ]);
                (
                    true,
                    LastError {
                        status: None,
                        message,
                    },
                    None,
                )
            }
            Outcome::NetworkError { message } => (
                false,
                LastError {
                    status: None,
                    message,
                },
                None,
            ),
        };
        entry.attempts = if counted { attempt } else { attempt - 1 };
        if counted && entry.attempts >= max_attempts {
            let dead = Settlement::Dead {
                key: key.into(),
                reason: DeadReason::MaxAttempts,
                attempts: entry.attempts,
                last_error,
                dead_at: now,
            };
            return Some(settle_sent(entry, dead));
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_error = Some(last_error.clone());
        entry.wait = Wait {
            failed_at: Some(now),
            rand,
            not_before: retry_after.unwrap_or(0),
            network: !counted,
        };
        let next_attempt_at = due_time(entry, &self.flags, &self.config);
        let retry = Settlement::Retry {
            key: key.into(),
            attempts: entry.attempts,
            next_attempt_at,
            last_error,
        };
        Some(settle_sent(entry, retry))
    }

    /// Storage no longer has a message this engine was about to send (another tab
    /// delivered or discarded it): forget it, without events; the other tab's note
    /// tells the listeners what happened.
    pub fn vanished(&mut self, key: &str) {
        let Some(pos) = self.pos_of(key) else {
            return;
        };
        if let State::InFlight { request, .. } = self.entries[&pos].state {
            self.release(request, pos);
        }
        self.remove(pos);
        self.note_flush(key, |_| {}, None);
    }

    /// The driver has persisted (or tried to persist) the settlement of `key`: apply it.
    pub fn commit(&mut self, key: &str) {
        let Some(pos) = self.pos_of(key) else {
            return;
        };
        let entry = &mut self.entries[&pos];
        let State::Settling {
            settlement,
            request,
        } = core::mem::replace(&mut entry.state, State::Idle)
        else {
            return;
        };
        let from_send = request.is_some();
        let attempt = entry.attempts;
        let network = entry.wait.network;
        if let Some(request) = request {
            self.release(request, pos);
        }
        match settlement {
            Settlement::Delivered {
                key,
                attempts,
                status,
            } => {
                self.note_flush(&key, |s| s.delivered += 1, None);
                self.delivered_here(pos, key, attempts, status);
            }
            Settlement::Retry {
                key, last_error, ..
            } => {
                let counted = !network;
                let attempt = if counted { attempt } else { attempt + 1 };
                self.events.push(Event::AttemptFailed {
                    key: key.clone(),
                    attempt,
                    status: last_error.status,
                    message: last_error.message,
                    counted,
                });
                self.arm(pos);
                if let Some(at) = self.entries[&pos].armed {
                    let failed_at = self.entries[&pos].wait.failed_at.unwrap_or(at);
                    self.events.push(Event::RetryScheduled {
                        key: key.clone(),
                        at,
                        delay_ms: at.saturating_sub(failed_at),
                    });
                }
                let group = self.entries[&pos].group.clone();
                self.note_flush(&key, |s| s.failed += 1, group.map(|g| (g, pos)));
            }
            Settlement::Dead {
                key,
                reason,
                last_error,
                ..
            } => {
                if from_send {
                    self.events.push(Event::AttemptFailed {
                        key: key.clone(),
                        attempt,
                        status: last_error.status,
                        message: last_error.message.clone(),
                        counted: true,
                    });
                }
                self.remove(pos);
                self.dead.insert(key.clone(), 0);
                self.note_flush(&key, |s| s.dead += 1, None);
                self.events.push(Event::DeadLettered {
                    key,
                    reason,
                    last_error,
                });
            }
        }
    }

    /// Sends every pending message as soon as a slot and its group's order allow,
    /// ignoring backoff waits, the retry flag and the offline state. Completion is
    /// reported through [`Engine::poll_flush_done`].
    pub fn flush(&mut self) -> FlushId {
        let id = self.next_flush;
        self.next_flush += 1;
        let mut remaining = KeyMap::default();
        for key in self.by_key.keys() {
            remaining.insert(key, 0);
        }
        let mut summary = FlushSummary::default();
        let positions = self.entries.positions();
        for pos in positions {
            let entry = &mut self.entries[&pos];
            match entry.state {
                State::Idle => {
                    entry.forced = true;
                    self.rearm(pos);
                }
                // Already being sent: the flush waits for that request's outcome and counts
                // it, so it counts the request too (else `delivered` could exceed `attempted`).
                State::InFlight { .. }
                | State::Settling {
                    request: Some(_), ..
                } => summary.attempted += 1,
                State::Settling { request: None, .. } => {}
            }
        }
        let flush = Flush {
            id,
            remaining,
            summary,
        };
        if flush.remaining.is_empty() {
            self.flushes_done.push((id, flush.summary));
        } else {
            self.flushes.push(flush);
        }
        id
    }

    /// A finished flush, if any.
    pub fn poll_flush_done(&mut self) -> Option<(FlushId, FlushSummary)> {
        self.flushes_done.pop()
    }

    /// Changes the flags. A shorter interval or re-enabled retries reschedule waiting
    /// messages at once. Refuses bad values and changes nothing then.
    pub fn set_flags(&mut self, patch: FlagsPatch, now: Millis) -> Result<Flags, OutboxError> {
        self.flags = self.flags.patched(patch)?;
        let positions = self.entries.positions();
        for pos in positions {
            let before = self.entries[&pos].armed;
            self.rearm(pos);
            let entry = &self.entries[&pos];
            if entry.failures > 0 && entry.armed != before {
                if let Some(at) = entry.armed {
                    let delay_ms = at.saturating_sub(now);
                    self.events.push(Event::RetryScheduled {
                        key: entry.key.clone(),
                        at,
                        delay_ms,
                    });
                }
            }
        }
        self.events.push(Event::FlagsChanged { flags: self.flags });
        Ok(self.flags)
    }

    /// The browser's connectivity changed. Going online wakes every message that last
    /// failed for want of a network, at once.
    pub fn set_online(&mut self, online: bool) {
        if online == self.online {
            return;
        }
        self.online = online;
        self.events.push(if online {
            Event::Online
        } else {
            Event::Offline
        });
        if online {
            let positions = self.entries.positions();
            for pos in positions {
                let entry = &mut self.entries[&pos];
                if entry.wait.network {
                    entry.wait.failed_at = None;
                    entry.wait.not_before = 0;
                    self.rearm(pos);
                }
            }
        }
    }

    /// Pauses (or resumes) automatic sending; `flush()` still sends. An app may pause
    /// while, say, the user is signed out.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Makes this engine the sender, or a mirror of another tab's sender that never
    /// sends. A mirror learns of changes through [`Engine::adopt`],
    /// [`Engine::apply_remote`], [`Engine::redriven`], [`Engine::discarded`] and
    /// [`Engine::set_flags`]; a new sender first calls [`Engine::resync`].
    pub fn set_sender(&mut self, sender: bool) {
        self.sender = sender;
    }

    /// Whether this engine sends.
    pub fn is_sender(&self) -> bool {
        self.sender
    }

    /// Replaces what the engine knows of pending and dead messages with what storage
    /// holds, keeping flags and counters: a tab that becomes the sender starts from the
    /// stored truth, including messages the previous sender had in flight.
    pub fn resync(&mut self, pending: Vec<StoredMessage>, dead_keys: Vec<String>) {
        debug_assert!(self.requests == 0, "a mirror has nothing in flight");
        for flush in core::mem::take(&mut self.flushes) {
            self.flushes_done.push((flush.id, FlushSummary::default()));
        }
        self.entries.clear();
        self.by_key.clear();
        self.group_ids.clear();
        self.grouped.clear();
        self.ready.clear();
        self.dead.clear();
        self.sending.clear();
        self.requests = 0;
        self.restore(pending, dead_keys);
    }

    /// Messages another tab committed: they become pending here too. Known keys are
    /// skipped, so a message announced twice is adopted once.
    pub fn adopt(&mut self, messages: Vec<StoredMessage>) {
        for m in messages {
            if self.by_key.contains_key(&m.key) || self.dead.contains_key(&m.key) {
                continue;
            }
            self.next_seq = self.next_seq.max(m.seq + 1);
            self.events.push(Event::Enqueued {
                key: m.key.clone(),
                group: m.group.clone(),
            });
            self.insert(m, FRESH);
        }
    }

    /// A settlement another tab committed, mirrored here. A message this engine has in
    /// flight is left alone: its own outcome will settle it (this happens only where
    /// every tab sends, or with a note from a former sender).
    pub fn apply_remote(&mut self, settlement: Settlement) {
        let pos = self.pos_of(settlement.key());
        if pos.is_some_and(|p| self.entries[&p].state != State::Idle) {
            return;
        }
        match settlement {
            Settlement::Delivered {
                key,
                attempts,
                status,
            } => {
                let Some(pos) = pos else { return };
                self.delivered_here(pos, key, attempts, status);
            }
            Settlement::Retry {
                key,
                attempts,
                next_attempt_at,
                last_error,
            } => {
                let Some(pos) = pos else { return };
                let entry = &mut self.entries[&pos];
                let counted = attempts > entry.attempts;
                entry.attempts = attempts;
                entry.failures = entry.failures.saturating_add(1);
                entry.last_error = Some(last_error.clone());
                self.events.push(Event::AttemptFailed {
                    key: key.clone(),
                    attempt: if counted { attempts } else { attempts + 1 },
                    status: last_error.status,
                    message: last_error.message,
                    counted,
                });
                if let Some(at) = next_attempt_at {
                    self.events.push(Event::RetryScheduled {
                        key,
                        at,
                        delay_ms: 0,
                    });
                }
            }
            Settlement::Dead {
                key,
                reason,
                last_error,
                ..
            } => {
                if let Some(pos) = pos {
                    self.remove(pos);
                }
                self.dead.insert(key.clone(), 0);
                self.events.push(Event::DeadLettered {
                    key,
                    reason,
                    last_error,
                });
            }
        }
    }

    /// Only forced (flushed) messages may go out: offline, or paused.
    fn gated(&self) -> bool {
        !self.online || self.paused
    }

    /// The keys of every dead letter.
    pub fn dead_keys(&self) -> Vec<String> {
        self.dead.keys()
    }

    /// Dead letters moved back to pending storage by the driver, each with a fresh seq
    /// from [`Engine::allocate_seq`] and attempts reset.
    pub fn redriven(&mut self, messages: Vec<StoredMessage>) {
        for m in messages {
            if self.dead.remove(&m.key).is_none() {
                continue;
            }
            self.events.push(Event::Redriven { key: m.key.clone() });
            self.insert(m, FRESH);
        }
    }

    /// Dead letters deleted by the driver.
    pub fn discarded(&mut self, keys: Vec<String>) {
        for key in keys {
            if self.dead.remove(&key).is_some() {
                self.events.push(Event::Discarded { key });
            }
        }
    }

    /// Whether a key is in the dead-letter store.
    pub fn is_dead(&self, key: &str) -> bool {
        self.dead.contains_key(key)
    }

    /// A pending message's live status, if it is pending.
    pub fn view(&self, key: &str) -> Option<EntryView> {
        let entry = &self.entries[&self.pos_of(key)?];
        Some(EntryView {
            in_flight: entry.state != State::Idle,
            next_attempt_at: if entry.failures > 0 {
                entry.armed
            } else {
                None
            },
        })
    }

    /// A pending message's metadata as storage should hold it now: what the driver
    /// writes, so that storage never needs a read-modify-write.
    pub fn stored(&self, key: &str) -> Option<StoredMessage> {
        let pos = self.pos_of(key)?;
        let entry = &self.entries[&pos];
        Some(StoredMessage {
            key: entry.key.clone(),
            seq: pos.seq,
            group: entry.group.clone(),
            created_at: entry.created_at,
            active_since: entry.active_since,
            attempts: entry.attempts,
            next_attempt_at: if entry.failures > 0 {
                due_time(entry, &self.flags, &self.config)
            } else {
                None
            },
            last_error: entry.last_error.clone(),
            bytes: entry.bytes,
        })
    }

    /// The next queued event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// Queues an event from the driver (for example a storage failure), so that all
    /// events reach listeners through one path and in order.
    pub fn push_event(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Counts for display.
    pub fn stats(&self, now: Millis) -> Stats {
        let oldest = self.entries.oldest();
        Stats {
            pending: self.entries.len(),
            in_flight: self.sending.len(),
            dead: self.dead.len(),
            oldest_pending_age_ms: oldest.map(|t| now.saturating_sub(t)),
            attempts: self.attempts,
            delivered: self.delivered,
            online: self.online,
            sender: self.sender,
        }
    }

    /// The number of group `g`, given it now if it has none.
    fn group_id(&mut self, g: &str) -> u64 {
        if let Some(&id) = self.group_ids.get(g) {
            return id;
        }
        self.next_group += 1;
        self.group_ids.insert(g.to_owned(), self.next_group);
        self.next_group
    }

    fn insert(&mut self, m: StoredMessage, wait: Wait) {
        let pos = self.place(m, wait);
        // A message older than the group's current head must not overtake it: re-arm the
        // group's head, which may now be this one.
        self.rearm_group_head(pos);
    }

    /// Adds a message to the sets, unarmed.
    fn place(&mut self, m: StoredMessage, wait: Wait) -> Pos {
        let pos = Pos::of(m.seq, &m.key, self.entries.vacant());
        if let Some(g) = &m.group {
            let id = self.group_id(g);
            self.grouped.insert((id, pos));
        }
        self.by_key.insert(m.key.clone(), pos.slot.into());
        self.entries.insert(pos, Entry::idle(m, wait));
        pos
    }

    fn remove(&mut self, pos: Pos) {
        self.disarm(pos);
        let entry = self.entries.remove(&pos).expect("removing a known entry");
        self.by_key.remove(&entry.key);
        if let Some(g) = entry.group {
            let id = self.group_ids.get(&g).copied().unwrap_or(0);
            self.grouped.remove(&(id, pos));
            let head = self.members(&g).next();
            match head {
                Some(next) => self.arm(next),
                None => {
                    self.group_ids.remove(&g);
                }
            }
        }
    }

    fn rearm_group_head(&mut self, pos: Pos) {
        match self.entries[&pos].group.clone() {
            None => self.rearm(pos),
            Some(g) => {
                let (first, second) = {
                    let mut members = self.members(&g);
                    (members.next(), members.next())
                };
                for s in [first, second].into_iter().flatten() {
                    self.rearm(s);
                }
            }
        }
    }

    /// The pending messages of a group, oldest first.
    fn members(&self, group: &str) -> impl Iterator<Item = Pos> + '_ {
        let id = self.group_ids.get(group).copied();
        let first = (id.unwrap_or(0), FIRST);
        self.grouped
            .range_from(&first)
            .take_while(move |(g, _)| Some(*g) == id)
            .map(|&(_, pos)| pos)
    }

    fn is_head(&self, pos: Pos) -> bool {
        match &self.entries[&pos].group {
            None => true,
            Some(g) => self.members(g).next() == Some(pos),
        }
    }

    fn arm(&mut self, pos: Pos) {
        if self.entries[&pos].armed.is_some() || !self.is_head(pos) {
            return;
        }
        let entry = &mut self.entries[&pos];
        if entry.state != State::Idle {
            return;
        }
        if let Some(due) = due_time(entry, &self.flags, &self.config) {
            entry.armed = Some(due);
            self.ready.insert((due, pos));
        }
    }

    fn disarm(&mut self, pos: Pos) {
        if let Some(entry) = self.entries.get_mut(&pos) {
            if let Some(due) = entry.armed.take() {
                self.ready.remove(&(due, pos));
            }
        }
    }

    fn rearm(&mut self, pos: Pos) {
        self.disarm(pos);
        self.arm(pos);
    }

    /// Records a settled key in every flush waiting for it. A failure in a group also
    /// settles, for the flush, the group's later messages: order keeps them waiting.
    fn note_flush(
        &mut self,
        key: &str,
        count: impl Fn(&mut FlushSummary),
        blocked_group: Option<(String, Pos)>,
    ) {
        let mut blocked = Vec::new();
        if let Some((g, pos)) = &blocked_group {
            // Only a group's head is ever sent, so little is skipped.
            for s in self.members(g) {
                if s > *pos {
                    blocked.push(self.entries[&s].key.clone());
                }
            }
        }
        let mut i = 0;
        while i < self.flushes.len() {
            let flush = &mut self.flushes[i];
            if flush.remaining.remove(key).is_some() {
                count(&mut flush.summary);
            }
            for k in &blocked {
                flush.remaining.remove(k);
            }
            if flush.remaining.is_empty() {
                let done = self.flushes.swap_remove(i);
                self.flushes_done.push((done.id, done.summary));
            } else {
                i += 1;
            }
        }
        for k in blocked {
            if let Some(s) = self.pos_of(&k) {
                self.entries[&s].forced = false;
            }
        }
    }
}

fn settle_sent(entry: &mut Entry, settlement: Settlement) -> Settlement {
    let request = match entry.state {
        State::InFlight { request, .. } => Some(request),
        _ => None,
    };
    entry.state = State::Settling {
        settlement: settlement.clone(),
        request,
    };
    settlement
}

/// When an idle message may next be sent, or `None` while it is parked (it failed and
/// retries are off).
fn due_time(entry: &Entry, flags: &Flags, config: &Config) -> Option<Millis> {
    if entry.forced {
        return Some(0);
    }
    if entry.failures == 0 {
        return Some(entry.wait.not_before);
    }
    if !flags.retry_enabled {
        return None;
    }
    let backoff_end = match entry.wait.failed_at {
        Some(t) => t.saturating_add(retry_delay(flags, config, entry.failures, entry.wait.rand)),
        None => 0,
    };
    Some(backoff_end.max(entry.wait.not_before))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(key: &str, seq: u64, group: Option<&str>) -> StoredMessage {
        StoredMessage {
            key: key.into(),
            seq,
            group: group.map(String::from),
            created_at: 0,
            active_since: 0,
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
            bytes: 0,
        }
    }

    #[test]
    fn a_key_map_behaves_like_a_btree_map() {
        let mut map = KeyMap::default();
        let mut model = std::collections::BTreeMap::new();
        for i in 0..2_000u64 {
            let key = format!("k{}", (i * 7919) % 500);
            if i % 3 == 0 {
                assert_eq!(map.remove(&key), model.remove(&key), "{key}");
            } else {
                assert_eq!(map.insert(key.clone(), i), model.insert(key, i));
            }
            assert_eq!(map.len(), model.len());
        }
        for i in 0..600 {
            let key = format!("k{i}");
            assert_eq!(map.get(&key), model.get(&key), "{key}");
        }
        let mut keys = map.keys();
        keys.sort();
        assert_eq!(keys, model.keys().cloned().collect::<Vec<_>>());
        map.clear();
        assert!(map.is_empty() && !map.contains_key("k1"));
    }

    #[test]
    fn two_tabs_picking_the_same_seq_keep_both_messages() {
        let mut engine = Engine::new(Config::default(), Flags::default());
        engine.set_sender(false);
        engine.adopt(vec![
            message("from-a", 7, Some("g")),
            message("from-b", 7, Some("g")),
        ]);
        assert_eq!(engine.stats(0).pending, 2);
        engine.set_sender(true);
        let mut sent = Vec::new();
        while let Some(Action::Send(t)) = engine.poll_action(0) {
            let s = engine.on_outcome(
                &t.key,
                Outcome::Response {
                    status: 201,
                    class: Class::Delivered,
                    retry_after: None,
                },
                0,
                0.0,
            );
            engine.commit(s.unwrap().key());
            sent.push(t.key);
        }
        assert_eq!(
            sent.len(),
            2,
            "both delivered, one after the other: {sent:?}"
        );
        assert_eq!(engine.stats(0).pending, 0);
    }

    #[test]
    fn a_mirror_never_sends_and_follows_the_senders_settlements() {
        let mut mirror = Engine::new(Config::default(), Flags::default());
        mirror.set_sender(false);
        mirror.adopt(vec![message("a", 1, None), message("b", 2, None)]);
        assert_eq!(mirror.poll_action(0), None);
        assert_eq!(mirror.poll_timeout(), None);
        mirror.apply_remote(Settlement::Delivered {
            key: "a".into(),
            attempts: 1,
            status: 201,
        });
        let last_error = LastError {
            status: Some(400),
            message: "no".into(),
        };
        mirror.apply_remote(Settlement::Dead {
            key: "b".into(),
            reason: DeadReason::Rejected,
            attempts: 1,
            last_error,
            dead_at: 5,
        });
        let stats = mirror.stats(0);
        assert_eq!(
            (stats.pending, stats.dead, stats.delivered, stats.sender),
            (0, 1, 1, false)
        );
        let types: Vec<Event> = std::iter::from_fn(|| mirror.poll_event()).collect();
        assert!(
            matches!(types[2], Event::Delivered { .. })
                && matches!(types[3], Event::DeadLettered { .. }),
            "{types:?}"
        );
    }

    #[test]
    fn a_new_sender_resyncs_from_storage_and_sends_what_the_old_one_had_in_flight() {
        let mut engine = Engine::new(Config::default(), Flags::default());
        engine.set_sender(false);
        engine.adopt(vec![message("stale", 1, None)]);
        // Storage says: "stale" was delivered meanwhile, "in-flight" was being sent (attempt 1 persisted).
        let mut in_flight = message("in-flight", 2, None);
        in_flight.attempts = 1;
        engine.resync(vec![in_flight], vec!["dead".into()]);
        engine.set_sender(true);
        match engine.poll_action(0) {
            Some(Action::Send(t)) => assert_eq!((t.key.as_str(), t.attempt), ("in-flight", 2)),
            other => panic!("{other:?}"),
        }
        assert!(engine.is_dead("dead"));
        assert_eq!(engine.stats(0).pending, 1);
    }

    #[test]
    fn a_batch_takes_due_heads_of_other_groups_within_its_byte_budget_and_one_slot() {
        let config = Config {
            concurrency: 1,
            ..Config::default()
        };
        let mut engine = Engine::new(config, Flags::default());
        let sized = |key: &str, seq, group: &str, bytes| StoredMessage {
            bytes,
            ..message(key, seq, Some(group))
        };
        let stored = vec![
            sized("a1", 1, "a", 100),
            sized("a2", 2, "a", 100),
            sized("b1", 3, "b", 100),
            sized("c1", 4, "c", 500),
        ];
        engine.restore(stored, Vec::new());
        let Some(Action::Send(first)) = engine.poll_action(0) else {
            panic!("nothing to send")
        };
        assert_eq!(first.key, "a1");
        let second = engine.poll_more(0, first.request, 300).expect("b1 fits");
        assert_eq!(
            second.key, "b1",
            "a2 waits for a1: one group never shares a request"
        );
        assert_eq!(
            engine.poll_more(0, first.request, 200),
            None,
            "c1 (500 bytes) does not fit"
        );
        assert_eq!(
            engine.poll_action(0),
            None,
            "the one slot is taken by the batch"
        );
        assert_eq!(engine.stats(0).in_flight, 2);
        let delivered = |status| Outcome::Response {
            status,
            class: Class::Delivered,
            retry_after: None,
        };
        let s = engine.on_outcome("a1", delivered(201), 1, 0.0).unwrap();
        engine.commit(s.key());
        assert_eq!(
            engine.poll_action(1),
            None,
            "the slot frees only when every item settled"
        );
        let s = engine.on_outcome("b1", delivered(201), 1, 0.0).unwrap();
        engine.commit(s.key());
        assert!(matches!(engine.poll_action(1), Some(Action::Send(t)) if t.key == "a2"));
    }

    /// What an engine would send, in order, with every message delivered as it goes.
    fn send_order(engine: &mut Engine, now: Millis) -> Vec<String> {
        let mut sent = Vec::new();
        while let Some(action) = engine.poll_action(now) {
            let Action::Send(t) = action else {
                panic!("only sends expected, got {action:?}")
            };
            let delivered = Outcome::Response {
                status: 201,
                class: Class::Delivered,
                retry_after: None,
            };
            let settlement = engine.on_outcome(&t.key, delivered, now, 0.0).unwrap();
            engine.commit(settlement.key());
            sent.push(t.key);
        }
        sent
    }

    #[test]
    fn restoring_all_at_once_behaves_like_inserting_one_by_one() {
        // More messages than one block of the ordered sets, in storage order (oldest
        // first) and reversed; pairs share a seq (two tabs in one millisecond).
        const N: u64 = 300;
        for oldest_first in [true, false] {
            let mut stored = Vec::new();
            for i in 0..N {
                let group = match i % 3 {
                    0 => None,
                    1 => Some("g1"),
                    _ => Some("g2"),
                };
                let seq = if oldest_first {
                    1000 + i / 2
                } else {
                    1000 - i / 2
                };
                let mut m = message(&format!("k{i}"), seq, group);
                if i % 7 == 0 {
                    m.next_attempt_at = Some(500 + i);
                }
                stored.push(m);
            }
            let mut bulk = Engine::new(Config::default(), Flags::default());
            bulk.restore(stored.clone(), vec!["dead-1".into()]);
            // The same messages through the general insert, one at a time.
            let mut one_by_one = Engine::new(Config::default(), Flags::default());
            one_by_one.dead.insert("dead-1".into(), 0);
            for m in stored {
                one_by_one.next_seq = one_by_one.next_seq.max(m.seq + 1);
                let wait = Wait::reloaded(m.next_attempt_at);
                one_by_one.insert(m, wait);
            }

            assert_eq!(bulk.stats(0), one_by_one.stats(0));
            assert_eq!(bulk.poll_timeout(), one_by_one.poll_timeout());
            assert_eq!(bulk.allocate_seq(0), one_by_one.allocate_seq(0));
            // First what is due now (a group waits behind its head), then the rest.
            let now = send_order(&mut bulk, 0);
            assert_eq!(now, send_order(&mut one_by_one, 0));
            let later = send_order(&mut bulk, 10_000);
            assert_eq!(later, send_order(&mut one_by_one, 10_000));
            assert!(!now.is_empty() && !later.is_empty());
            assert_eq!(
                now.len() + later.len(),
                N as usize,
                "every message, each once"
            );
        }
    }
}
