// The IndexedDB side of one outbox, in JavaScript: each function below is one
// transaction, called once from wasm with everything it needs, so a batch of messages
// costs one call across the boundary instead of one per request and callback.
// src/browser/store.rs binds these and turns their results into Rust values.
//
// Layout (database version 2):
// - "messages": one record per pending message, its payload's JSON text included, so
//   that enqueue writes exactly one record. The metadata that never changes is the
//   record's primary key ([seq, key, createdAt, activeSince, bytes, group]), so that
//   opening an outbox reads keys only (getAllKeys), never a payload. A unique index on
//   "key" refuses a second message with the same key (from another tab, say).
// - "attempts": what changes while a message is retried ({key, attempts,
//   nextAttemptAt, lastError}), written before each send; absent for a message never
//   sent.
// - "dead": dead letters, payload included, keyed by "key", indexed by "seq".
// - "meta": the persisted flags, under the key "flags".
// A message leaves "messages" only in the transaction that records where it went, so a
// crash at any point leaves it in exactly one store.

const MESSAGES = "messages";
const ATTEMPTS = "attempts";
const DEAD = "dead";
const META = "meta";
const VERSION = 2;
const PRIMARY = ["seq", "key", "createdAt", "activeSince", "bytes", "group"];

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
    const result = work(tx);
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
  db.createObjectStore(MESSAGES, { keyPath: PRIMARY }).createIndex("key", "key", { unique: true });
  db.createObjectStore(ATTEMPTS, { keyPath: "key" });
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
          tx.objectStore(MESSAGES).add(messageRecord(m, bodies.get(m.key)));
          if (m.attempts > 0 || m.nextAttemptAt != null || m.lastError) tx.objectStore(ATTEMPTS).put(attemptsRecord(m));
        }
        then(tx.objectStore(DEAD).getAll(), (dead) => {
          for (const d of dead) tx.objectStore(DEAD).put({ ...d, body: bodies.get(d.key) ?? null });
          db.deleteObjectStore("pending");
          db.deleteObjectStore("bodies");
        });
      });
    }),
  );
}

/**
 * What an opening outbox needs, read without touching a payload: per pending message
 * (oldest first) its key, group ("" for none) and numbers [seq, createdAt, activeSince,
 * bytes, attempts, nextAttemptAt (-1 for none)], plus the last errors of the messages
 * that have one, every dead letter's key, and the flags.
 */
export function load(db) {
  return transact(db, [MESSAGES, ATTEMPTS, DEAD, META], undefined, (tx) => {
    const read = {};
    then(tx.objectStore(MESSAGES).getAllKeys(), (v) => (read.keys = v));
    then(tx.objectStore(ATTEMPTS).getAll(), (v) => (read.attempts = v));
    then(tx.objectStore(DEAD).getAllKeys(), (v) => (read.dead = v));
    then(tx.objectStore(META).get("flags"), (v) => (read.flags = v));
    return () => columns(read);
  });
}

function columns({ keys, attempts, dead, flags }) {
  const tried = new Map(attempts.map((a) => [a.key, a]));
  const n = keys.length;
  const numbers = new Float64Array(n * 6);
  const ids = new Array(n);
  const groups = new Array(n);
  const errors = []; // [index, status (-1 for none), message]
  for (let i = 0; i < n; i++) {
    const [seq, key, createdAt, activeSince, bytes, group] = keys[i];
    const a = tried.get(key);
    numbers.set([seq, createdAt, activeSince, bytes, a ? a.attempts : 0, a?.nextAttemptAt ?? -1], i * 6);
    ids[i] = key;
    groups[i] = group;
    if (a?.lastError) errors.push(i, a.lastError.status ?? -1, String(a.lastError.message ?? ""));
  }
  return { numbers, keys: ids, groups, errors, dead, flags };
}

/**
 * Adds new messages (metadata objects and their JSON texts) in one transaction;
 * resolves with, per message, whether it went in. A key already stored (by another
 * tab) is refused by the unique index; that one is skipped and the rest commit.
 */
export function insertAll(db, durability, metas, bodies) {
  return transact(db, [MESSAGES], durability, (tx) => {
    const store = tx.objectStore(MESSAGES);
    const ok = new Array(metas.length).fill(true);
    metas.forEach((m, i) => {
      store.add(messageRecord(m, bodies[i])).onerror = (e) => {
        e.preventDefault(); // keeps the transaction alive
        e.stopPropagation();
        ok[i] = false;
      };
    });
    return () => ok;
  });
}

/**
 * Persists the attempt counts of messages about to be sent and reads their payloads,
 * in one transaction. Resolves with each payload, or undefined for a message no longer
 * stored (another tab delivered or discarded it): nothing is written for that one.
 */
export function beginAttempts(db, durability, metas) {
  return transact(db, [MESSAGES, ATTEMPTS], durability, (tx) => {
    const bodies = new Array(metas.length);
    const byKey = tx.objectStore(MESSAGES).index("key");
    metas.forEach((m, i) =>
      then(byKey.get(m.key), (record) => {
        if (!record) return;
        bodies[i] = record.body;
        tx.objectStore(ATTEMPTS).put(attemptsRecord(m));
      }),
    );
    return () => bodies;
  });
}

/**
 * Records outcomes in one transaction. Each op is {outcome: "delivered" | "retry" |
 * "dead", meta, reason?, deadAt?}, `meta` being the message as it should now be
 * stored. A message another tab has already settled is left alone.
 */
export function record(db, durability, ops) {
  return transact(db, [MESSAGES, ATTEMPTS, DEAD], durability, (tx) => {
    const messages = tx.objectStore(MESSAGES);
    const attempts = tx.objectStore(ATTEMPTS);
    for (const { outcome, meta, reason, deadAt } of ops) {
      const pk = primaryKey(meta);
      if (outcome === "delivered") {
        messages.delete(pk);
        attempts.delete(meta.key);
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
    return () => undefined;
  });
}

/** Every pending message, oldest first: metadata, attempts and `body`. */
export function listPending(db) {
  return transact(db, [MESSAGES, ATTEMPTS], undefined, (tx) => {
    let out = [];
    then(tx.objectStore(ATTEMPTS).getAll(), (tried) => {
      const byKey = new Map(tried.map((a) => [a.key, a]));
      then(tx.objectStore(MESSAGES).getAll(), (records) => {
        out = records.map((r) => {
          const a = byKey.get(r.key);
          return {
            ...r,
            group: r.group === "" ? null : r.group,
            attempts: a ? a.attempts : 0,
            nextAttemptAt: a?.nextAttemptAt ?? null,
            lastError: a?.lastError ?? null,
          };
        });
      });
    });
    return () => out;
  });
}

/** Every dead letter with its `body`, oldest first. */
export function listDead(db) {
  return transact(db, [DEAD], undefined, (tx) => {
    let out = [];
    then(tx.objectStore(DEAD).index("seq").getAll(), (records) => (out = records));
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
      tx.objectStore(MESSAGES).put(messageRecord(m, d.body));
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
  return transact(db, [DEAD], durability, (tx) => {
    for (const k of keys) tx.objectStore(DEAD).delete(k);
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
