// The IndexedDB side of one outbox, in JavaScript: each function below is one
// transaction, called once from wasm with everything it needs, so a batch of messages
// costs one call across the boundary instead of one per request and callback.
// src/browser/store.rs binds these and turns their results into Rust values.
//
// Layout (database version 3):
// - "messages": one record per pending message, its payload's JSON text included, so
//   that enqueue writes exactly one record. The metadata that never changes is the
//   record's primary key ([seq, key, createdAt, activeSince, bytes, group]), so that
//   opening an outbox reads keys only (getAllKeys), never a payload. The key is given
//   with each write (out of line), not a key path: the browser would otherwise read six
//   properties out of every record it stores (version 2 did; see `outOfLineKeys`).
// - "claims": the keys an app chose itself (`enqueue(p, {key})`), while their message is
//   pending or dead: adding a claim fails if another tab claimed the key first, so the
//   same key is never stored twice. A generated key (a UUIDv7) needs no claim. This
//   replaces a unique index on every message, which every write had to update.
// - "attempts": what changes while a message is retried ({key, attempts,
//   nextAttemptAt, lastError}), written when an attempt fails; absent for a message
//   that never failed.
// - "inflight": one record per request under way, written before it is sent: {id, keys,
//   attempts}, the attempt number each message is on. It is deleted with the request's
//   outcomes, so one that outlives its request (the tab crashed) still counts those
//   attempts; the next load folds it into "attempts". One write per request, not one
//   per message, is what makes batches cheap.
// - "dead": dead letters, payload included, keyed by "key", indexed by "seq".
// - "meta": the persisted flags, under the key "flags".
// A message leaves "messages" only in the transaction that records where it went, so a
// crash at any point leaves it in exactly one store.

const MESSAGES = "messages";
const ATTEMPTS = "attempts";
const INFLIGHT = "inflight";
const CLAIMS = "claims";
const DEAD = "dead";
const META = "meta";
const VERSION = 3;

/** A message record's primary key, from its metadata ("" stands for no group). */
const primaryKey = (m) => [m.seq, m.key, m.createdAt, m.activeSince, m.bytes ?? 0, m.group ?? ""];

const messageRecord = (m, body) => ({
  seq: m.seq,
  key: m.key,
  createdAt: m.createdAt,
  activeSince: m.activeSince,
  bytes: m.bytes ?? 0,
  group: m.group ?? "",
  body,
});

const attemptsRecord = (m) => ({
  key: m.key,
  attempts: m.attempts,
  nextAttemptAt: m.nextAttemptAt ?? null,
  lastError: m.lastError ?? null,
});

/**
 * Runs `work(tx)` in one transaction: read-only when `durability` is undefined, else
 * read-write with that durability ("default", "strict" or "relaxed"). `work` issues the
 * requests and returns a function that gives the result once it commits.
 */
function transact(db, stores, durability, work) {
  return new Promise((resolve, reject) => {
    const tx =
      durability === undefined
        ? db.transaction(stores, "readonly")
        : db.transaction(stores, "readwrite", { durability });
    let result;
    try {
      result = work(tx);
    } catch (e) {
      tx.abort(); // nothing of a half-issued step may commit
      throw e;
    }
    tx.oncomplete = () => resolve(result());
    tx.onabort = () => reject(tx.error || new Error("the transaction was aborted"));
  });
}

const then = (request, f) => (request.onsuccess = () => f(request.result));

/** Opens (creating or upgrading) the database `name`. */
export function openDatabase(name) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(name, VERSION);
    open.onupgradeneeded = (event) => upgrade(open.result, open.transaction, event.oldVersion);
    open.onsuccess = () => {
      const db = open.result;
      // A newer version of the library elsewhere wants to upgrade: let it.
      db.onversionchange = () => db.close();
      resolve(db);
    };
    open.onerror = () => reject(open.error);
  });
}

function upgrade(db, tx, oldVersion) {
  if (oldVersion === 2) return outOfLineKeys(db, tx);
  const claims = db.createObjectStore(CLAIMS);
  db.createObjectStore(MESSAGES);
  db.createObjectStore(ATTEMPTS, { keyPath: "key" });
  db.createObjectStore(INFLIGHT, { keyPath: "id" });
  if (oldVersion < 1) {
    db.createObjectStore(DEAD, { keyPath: "key" }).createIndex("seq", "seq");
    db.createObjectStore(META);
    return;
  }
  // Version 1 kept metadata in "pending" and payloads in "bodies": move both into the
  // new stores and give each dead letter its payload, inside this upgrade transaction.
  const bodies = new Map();
  const old = tx.objectStore("bodies");
  then(old.getAllKeys(), (keys) =>
    then(old.getAll(), (values) => {
      keys.forEach((k, i) => bodies.set(k, values[i]));
      then(tx.objectStore("pending").getAll(), (metas) => {
        for (const m of metas) {
          if (!bodies.has(m.key)) continue; // a message without its payload can never be sent
          tx.objectStore(MESSAGES).add(messageRecord(m, bodies.get(m.key)), primaryKey(m));
          claims.put(true, m.key); // a version-1 key may have been the app's own
          if (m.attempts > 0 || m.nextAttemptAt != null || m.lastError) tx.objectStore(ATTEMPTS).put(attemptsRecord(m));
        }
        then(tx.objectStore(DEAD).getAll(), (dead) => {
          for (const d of dead) {
            tx.objectStore(DEAD).put({ ...d, body: bodies.get(d.key) ?? null });
            claims.put(true, d.key);
          }
          db.deleteObjectStore("pending");
          db.deleteObjectStore("bodies");
        });
      });
    }),
  );
}

/**
 * Version 2 gave "messages" a key path, which made every write cost the browser six
 * property reads that passing the same key saves. The records move unchanged, a chunk
 * at a time so that no more than a chunk of payloads is in memory, into a new store of
 * that name without one, inside this upgrade transaction. The first databases of
 * version 2 had no "claims" (a unique index on "key" did that job): for those it is made
 * and every key claimed, as for version 1, since which of them the app chose is unknown.
 */
function outOfLineKeys(db, tx) {
  const CHUNK = 500;
  const claims = db.objectStoreNames.contains(CLAIMS) ? null : db.createObjectStore(CLAIMS);
  const old = tx.objectStore(MESSAGES);
  old.name = "messages-v2";
  const store = db.createObjectStore(MESSAGES);
  const copy = (range) => {
    // Requests on one store are answered in order: the keys are there with the values.
    const keys = old.getAllKeys(range, CHUNK);
    then(old.getAll(range, CHUNK), (values) => {
      values.forEach((v, i) => {
        store.add(v, keys.result[i]);
        claims?.put(true, v.key);
      });
      if (values.length < CHUNK) db.deleteObjectStore(old.name);
      else copy(IDBKeyRange.lowerBound(keys.result.at(-1), true));
    });
  };
  copy(undefined);
  if (claims) then(tx.objectStore(DEAD).getAllKeys(), (dead) => dead.forEach((key) => claims.put(true, key)));
}

/**
 * What an opening outbox needs, read without touching a payload, packed so that wasm
 * converts little: `keys`, every pending message's key (oldest first) joined by "\n"
 * (keys are visible ASCII); `numbers`, 7 per message: [seq, createdAt, activeSince,
 * bytes, attempts, nextAttemptAt (-1: none), group (an index into `groups`, -1: none)];
 * `groups`, each distinct group once; `errors`, [index, status (-1: none), message] for
 * the messages whose last attempt failed; `dead`, the dead letters' keys joined the same
 * way; and the flags. Requests found in "inflight" count as attempts made; they, and
 * "attempts" records whose message is gone, are then tidied up in a second transaction.
 */
export function load(db, durability) {
  return transact(db, [MESSAGES, ATTEMPTS, INFLIGHT, DEAD, META], undefined, (tx) => {
    const read = {};
    then(tx.objectStore(MESSAGES).getAllKeys(), (v) => (read.keys = v));
    then(tx.objectStore(ATTEMPTS).getAll(), (v) => (read.attempts = v));
    then(tx.objectStore(INFLIGHT).getAll(), (v) => (read.inflight = v));
    then(tx.objectStore(DEAD).getAllKeys(), (v) => (read.dead = v));
    then(tx.objectStore(META).get("flags"), (v) => (read.flags = v));
    return () => read;
  }).then((read) => {
    const tried = triedSoFar(read.attempts, read.inflight);
    // Usually nothing has failed or is under way: then there is nothing to tidy, and no
    // need to index every pending key.
    if (read.attempts.length > 0 || read.inflight.length > 0) {
      const pending = new Set(read.keys.map((pk) => pk[1]));
      const orphans = read.attempts.filter((a) => !pending.has(a.key)).map((a) => a.key);
      if (read.inflight.length > 0 || orphans.length > 0) {
        tidy(db, durability, read.inflight, tried, pending, orphans).catch(() => {}); // tried again at the next load
      }
    }
    return columns(read, tried);
  });
}

/** Attempt state by key: the "attempts" records, raised by any request under way. */
function triedSoFar(attempts, inflight) {
  const tried = new Map(attempts.map((a) => [a.key, a]));
  for (const { keys, attempts: numbers } of inflight) {
    keys.forEach((key, i) => {
      const a = tried.get(key);
      if (!a) tried.set(key, { key, attempts: numbers[i], nextAttemptAt: null, lastError: null });
      else if (a.attempts < numbers[i]) tried.set(key, { ...a, attempts: numbers[i] });
    });
  }
  return tried;
}

/**
 * Moves what "inflight" records say into "attempts", and deletes "attempts" records of
 * messages no longer pending (both as `load` saw them). Safe even for a request another
 * tab still has under way: its outcome overwrites the same "attempts" record, or leaves
 * it to the next tidy.
 */
function tidy(db, durability, inflight, tried, pending, orphans) {
  return transact(db, [ATTEMPTS, INFLIGHT], durability, (tx) => {
    const attempts = tx.objectStore(ATTEMPTS);
    for (const { id, keys } of inflight) {
      tx.objectStore(INFLIGHT).delete(id);
      for (const key of keys) if (pending.has(key)) attempts.put(tried.get(key));
    }
    for (const key of orphans) attempts.delete(key);
    return () => undefined;
  });
}

function columns({ keys, dead, flags }, tried) {
  const rows = keys.filter((pk) => !pk[1].includes("\n")); // never written by this library
  const numbers = new Float64Array(rows.length * 7);
  const groups = [];
  const groupIndex = new Map();
  const errors = [];
  rows.forEach(([seq, key, createdAt, activeSince, bytes, group], i) => {
    const a = tried.get(key);
    let g = -1;
    if (group !== "") {
      g = groupIndex.get(group);
      if (g === undefined) {
        g = groups.push(group) - 1;
        groupIndex.set(group, g);
      }
    }
    const at = i * 7;
    numbers[at] = seq;
    numbers[at + 1] = createdAt;
    numbers[at + 2] = activeSince;
    numbers[at + 3] = bytes;
    numbers[at + 4] = a ? a.attempts : 0;
    numbers[at + 5] = a?.nextAttemptAt ?? -1;
    numbers[at + 6] = g;
    if (a?.lastError) errors.push(i, a.lastError.status ?? -1, String(a.lastError.message ?? ""));
  });
  return { keys: rows.map((pk) => pk[1]).join("\n"), numbers, groups, errors, dead: dead.join("\n"), flags };
}

/**
 * Adds new messages in one transaction, given as columns: `keys` (joined with "\n"),
 * `groups` (no entry for none), `numbers` ([seq, createdAt, activeSince, bytes,
 * claimed] per message, `claimed` 1 when the app chose the key: then it is claimed, see
 * "claims") and `bodies` (JSON texts). Once it commits, calls `written(refused)`:
 * `refused` is undefined when every message went in, else an array with `true` for each
 * message whose key another tab claimed first (it was taken out again; the rest
 * committed). If it fails, calls `failed(error)`, never synchronously.
 *
 * Callbacks rather than a promise: this is every enqueue's path, and a promise would
 * add a microtask and a callback between the commit and the app's next line.
 */
export function insertAll(db, durability, joinedKeys, groups, numbers, bodies, written, failed) {
  let tx, thrown;
  try {
    const keys = joinedKeys.split("\n");
    const claimed = (i) => numbers[i * 5 + 4] === 1;
    // Most batches claim nothing (generated keys): then the claims store stays out of scope.
    const claims = keys.some((_, i) => claimed(i));
    // A store name rather than a list, and no options for the default: each costs the
    // browser a conversion on every enqueue's transaction.
    const options = durability === "default" ? undefined : { durability };
    tx = db.transaction(claims ? [MESSAGES, CLAIMS] : MESSAGES, "readwrite", options);
    tx.onabort = () => failed(thrown ?? tx.error ?? new Error("the transaction was aborted"));
    const store = tx.objectStore(MESSAGES);
    const refused = new Map(); // claim request -> the message's index
    const pks = [];
    const out = [];
    for (let i = 0; i < keys.length; i++) {
      const at = i * 5;
      const m = { seq: numbers[at], key: keys[i], createdAt: numbers[at + 1], activeSince: numbers[at + 2], bytes: numbers[at + 3], group: groups[i] };
      if (claimed(i)) refused.set(tx.objectStore(CLAIMS).add(true, m.key), i);
      const pk = primaryKey(m);
      pks.push(pk);
      store.add(messageRecord(m, bodies[i]), pk);
    }
    // One handler for every claim's error, rather than one per request (and none
    // without claims: any other error aborts the transaction).
    if (claims) {
      tx.onerror = (e) => {
        const i = refused.get(e.target);
        if (i === undefined) return;
        e.preventDefault(); // keeps the transaction alive
        e.stopPropagation();
        out[i] = true;
        store.delete(pks[i]);
      };
    } else {
      // Nothing more will be asked of it: commit now rather than after the browser has
      // answered the requests, which saves a round trip to it on every enqueue. (With
      // claims, a refused one still has its message to take out again.)
      tx.commit?.();
    }
    tx.oncomplete = () => written(out.length ? out : undefined);
  } catch (e) {
    // Nothing of a half-issued batch may commit; the answer comes later, as it would
    // (never from here: wasm holds its state while it calls).
    thrown = e;
    try {
      tx.abort(); // its abort event answers
    } catch {
      queueMicrotask(() => failed(e)); // no transaction, or one that cannot abort
    }
  }
}

const byPrimaryKey = (a, b) => indexedDB.cmp(a, b);

/**
 * Reads the message records with these primary keys into `found` (by key), then calls
 * `next`. A batch's messages usually sit side by side, so one ranged read (capped at
 * twice the count) fetches them all; any it did not reach are read one by one.
 */
function readMany(store, pks, found, next) {
  if (pks.length === 0) return next();
  const sorted = [...pks].sort(byPrimaryKey);
  const cap = 2 * pks.length;
  then(store.getAll(IDBKeyRange.bound(sorted[0], sorted.at(-1)), cap), (records) => {
    for (const r of records) found.set(r.key, r);
    // Under the cap, the whole range was read: what is missing is gone.
    const missing = records.length < cap ? [] : pks.filter((pk) => !found.has(pk[1]));
    if (missing.length === 0) return next();
    let left = missing.length;
    for (const pk of missing) {
      then(store.get(pk), (r) => {
        if (r) found.set(r.key, r);
        if (--left === 0) next();
      });
    }
  });
}

/**
 * Deletes the message records with these primary keys. When they are exactly what a
 * key range holds (checked in this transaction, so nothing can slip in between), one
 * ranged delete does it; otherwise one delete each.
 */
function deleteMany(store, pks) {
  if (pks.length < 3) return pks.forEach((pk) => store.delete(pk));
  const sorted = [...pks].sort(byPrimaryKey);
  const range = IDBKeyRange.bound(sorted[0], sorted.at(-1));
  then(store.getAllKeys(range, sorted.length + 1), (keys) => {
    const exact = keys.length === sorted.length && keys.every((k, i) => k[1] === sorted[i][1]);
    if (exact) store.delete(range);
    else for (const pk of pks) store.delete(pk);
  });
}

/**
 * Persists that the request `id` is about to carry these messages (`attempts` being the
 * attempt number each is on) and reads their payloads, in one transaction. Resolves
 * with each payload, or undefined for a message no longer stored (another tab
 * delivered or discarded it).
 */
export function beginAttempts(db, durability, id, metas) {
  return transact(db, [MESSAGES, INFLIGHT], durability, (tx) => {
    const found = new Map();
    readMany(tx.objectStore(MESSAGES), metas.map(primaryKey), found, () => {});
    tx.objectStore(INFLIGHT).put({ id, keys: metas.map((m) => m.key), attempts: metas.map((m) => m.attempts) });
    return () => metas.map((m) => found.get(m.key)?.body);
  });
}

/** Whether an "attempts" record may exist for this message: a failure wrote one. */
const hasRetryState = (m) => m.lastError != null || m.nextAttemptAt != null || m.attempts > 1;

/**
 * Records outcomes in one transaction, and ends the request `id` (null or undefined for
 * outcomes that needed none). Each op is {outcome: "delivered" | "retry" | "dead",
 * meta, reason?, deadAt?}, `meta` being the message as it should now be stored. A
 * message another tab has already settled is left alone.
 */
export function record(db, durability, id, ops) {
  return transact(db, [MESSAGES, ATTEMPTS, INFLIGHT, DEAD, CLAIMS], durability, (tx) => {
    const messages = tx.objectStore(MESSAGES);
    const attempts = tx.objectStore(ATTEMPTS);
    if (id != null) tx.objectStore(INFLIGHT).delete(id);
    const delivered = [];
    for (const { outcome, meta, reason, deadAt } of ops) {
      const pk = primaryKey(meta);
      if (outcome === "delivered") {
        delivered.push(pk);
        tx.objectStore(CLAIMS).delete(meta.key); // a dead letter keeps its claim
        // A record that exists without a failure (folded from "inflight") is tidied at load.
        if (hasRetryState(meta)) attempts.delete(meta.key);
      } else if (outcome === "retry") {
        then(messages.count(pk), (n) => n && attempts.put(attemptsRecord(meta)));
      } else {
        then(messages.get(pk), (stored) => {
          if (!stored) return;
          messages.delete(pk);
          attempts.delete(meta.key);
          tx.objectStore(DEAD).put({ ...meta, reason, deadAt, body: stored.body });
        });
      }
    }
    deleteMany(messages, delivered);
    return () => undefined;
  });
}

/** A stored payload's JSON text, parsed; null if it is not JSON. */
function payloadOf(body) {
  try {
    return JSON.parse(body);
  } catch {
    return null;
  }
}

/**
 * A last error as the API shows it: `{ status?, message }`, `status` left out when there
 * was no answer (records written by version 1 may hold `status: null`).
 */
function lastErrorOf(e) {
  if (e == null) return null;
  const message = String(e.message ?? "");
  return typeof e.status === "number" ? { status: e.status, message } : { message };
}

/**
 * Every pending message as `pending()` lists it (the TypeScript `PendingMessage`),
 * oldest first, with the attempt state storage holds: the driver then puts in the
 * engine's live state (in flight, attempts, next attempt).
 */
export function listPending(db) {
  return transact(db, [MESSAGES, ATTEMPTS, INFLIGHT], undefined, (tx) => {
    const read = {};
    then(tx.objectStore(MESSAGES).getAll(), (v) => (read.records = v));
    then(tx.objectStore(ATTEMPTS).getAll(), (v) => (read.attempts = v));
    then(tx.objectStore(INFLIGHT).getAll(), (v) => (read.inflight = v));
    return () => {
      const tried = triedSoFar(read.attempts, read.inflight);
      return read.records.map((r) => {
        const a = tried.get(r.key);
        return {
          key: r.key,
          group: r.group || null,
          createdAt: r.createdAt,
          attempts: a ? a.attempts : 0,
          state: "pending",
          nextAttemptAt: a?.nextAttemptAt ?? null,
          lastError: lastErrorOf(a?.lastError),
          payload: payloadOf(r.body),
        };
      });
    };
  });
}

/** Every dead letter as `deadLetters()` lists it (the TypeScript `DeadLetter`), oldest first. */
export function listDead(db) {
  return transact(db, [DEAD], undefined, (tx) => {
    let out = [];
    then(tx.objectStore(DEAD).index("seq").getAll(), (records) => {
      out = records.map((d) => ({
        key: d.key,
        group: d.group || null,
        createdAt: d.createdAt,
        attempts: d.attempts,
        state: "dead",
        reason: d.reason,
        lastError: lastErrorOf(d.lastError),
        deadAt: d.deadAt,
        payload: payloadOf(d.body),
      }));
    });
    return () => out;
  });
}

/**
 * Moves dead letters (the given keys, or all when `keys` is null) back to pending, in
 * one transaction: same key and payload, attempts reset, `activeSince` = `now`, and a
 * new position from `nextSeq()`. Resolves with the moved messages' metadata.
 */
export function redrive(db, durability, keys, now, nextSeq) {
  return transact(db, [MESSAGES, DEAD], durability, (tx) => {
    const dead = tx.objectStore(DEAD);
    const moved = [];
    const move = (d) => {
      const m = { ...d, seq: nextSeq(), activeSince: now, attempts: 0, nextAttemptAt: null, lastError: null };
      delete m.reason;
      delete m.deadAt;
      delete m.body;
      tx.objectStore(MESSAGES).put(messageRecord(m, d.body), primaryKey(m));
      dead.delete(d.key);
      moved.push(m);
    };
    if (keys === null) then(dead.index("seq").getAll(), (all) => all.forEach(move));
    else for (const k of keys) then(dead.get(k), (d) => d && move(d));
    return () => moved;
  });
}

/** Deletes dead letters. */
export function discard(db, durability, keys) {
  return transact(db, [DEAD, CLAIMS], durability, (tx) => {
    for (const k of keys) {
      tx.objectStore(DEAD).delete(k);
      tx.objectStore(CLAIMS).delete(k);
    }
    return () => undefined;
  });
}

/** Persists the flags document. */
export function saveFlags(db, durability, flags) {
  return transact(db, [META], durability, (tx) => {
    tx.objectStore(META).put(flags, "flags");
    return () => undefined;
  });
}
