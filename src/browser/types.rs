//! The TypeScript declarations of the package, written by hand in one place (the
//! generated ones would say `any`). `index.d.ts` re-exports them.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** The runtime-changeable retry settings (feature flags). */
export interface Flags {
  /** When false, failed messages wait, pending, until it is true again or `flush()` runs. First sends still happen. Default true. */
  retryEnabled: boolean;
  /** The base of the exponential backoff, in ms. Default 1000. */
  retryIntervalMs: number;
}

/** What a custom `transport` receives. */
export interface TransportRequest {
  key: string;
  payload: unknown;
  group: string | null;
  /** 1-based counted attempt number. */
  attempt: number;
  /** Aborted after `requestTimeoutMs`. */
  signal: AbortSignal;
}

/** What a custom `transport` returns. */
export interface TransportResponse {
  status: number;
  /** `Retry-After` is read from here when present. */
  headers?: Headers | Record<string, string>;
}

export interface OutboxOptions {
  /** Required. One IndexedDB database per name (`durable-outbox/<name>`). */
  name: string;
  /** URL that messages are POSTed to as JSON. Give this or `transport`. */
  endpoint?: string;
  /** Static headers sent with every request. */
  headers?: Record<string, string>;
  /** Called before each send, for fresh headers (an auth token). */
  getHeaders?: () => Record<string, string> | Headers | Promise<Record<string, string> | Headers>;
  /** Replaces fetch. A thrown error counts as a network failure. */
  transport?: (request: TransportRequest) => Promise<TransportResponse>;
  /** Overrides the status table. Return anything else to use the default for that status. */
  classify?: (status: number) => "delivered" | "transient" | "permanent" | undefined;
  /** Used when no flags are persisted yet. */
  flags?: Partial<Flags>;
  /** Counted attempts before a message is dead-lettered ("max-attempts"). Default 5. */
  maxAttempts?: number;
  /** The longest backoff wait, in ms. Default 300000. */
  maxDelayMs?: number;
  /** Default "full". */
  jitter?: "full" | "equal" | "none";
  /** Older messages are dead-lettered ("expired") instead of sent. Default 7 days. */
  maxAgeMs?: number;
  /** Requests in flight at most. Default 4. */
  concurrency?: number;
  /** Each request is aborted after this many ms (a counted failure). Default 30000. */
  requestTimeoutMs?: number;
  /** Largest payload, as UTF-8 JSON bytes. Default 1048576. */
  maxPayloadBytes?: number;
  /**
   * IndexedDB commit durability. "default" (the default) leaves it to the browser, as a
   * plain IndexedDB write does (Chromium then commits like "relaxed"); "strict"
   * waits for the disk on every commit and survives power loss, at a lower write rate;
   * "relaxed" survives a tab or browser crash but not an OS crash or power loss.
   */
  durability?: "default" | "strict" | "relaxed";
  /**
   * Batch mode: up to `batchMaxItems` due messages of different groups (a group's order
   * is kept) go in one `POST {"items": [{key, payload}]}` to this URL, which answers
   * `{"results": [{key, status, retryAfter?}]}` (the reference server's
   * `/v1/messages/batch`). Each item is classified as if sent alone. Needs `endpoint`.
   */
  batchEndpoint?: string;
  /** Messages per batch request, 1 to 100. Default 25. */
  batchMaxItems?: number;
  /** Payload bytes per batch request (a larger message goes alone). Default 524288. */
  batchMaxBytes?: number;
  /** When false, nothing is sent until `flush()` or `resume()`. Default true. */
  autoStart?: boolean;
}

/** The last failure of a message. */
export interface LastError {
  /** The HTTP status, when the server answered. */
  status?: number;
  message: string;
}

/** A pending message. */
export interface Message<P = unknown> {
  /** The idempotency key, sent as `Idempotency-Key`. */
  key: string;
  group: string | null;
  payload: P;
  /** ms since the epoch. */
  createdAt: number;
  /** Counted attempts so far. */
  attempts: number;
  state: "pending" | "in-flight";
  /** When it will be retried automatically (ms since the epoch), if scheduled. Not on `enqueue`'s result. */
  nextAttemptAt?: number | null;
  lastError?: LastError | null;
}

export type DeadReason = "rejected" | "max-attempts" | "expired";

/** A message in the dead-letter store. */
export interface DeadLetter<P = unknown> {
  key: string;
  group: string | null;
  payload: P;
  createdAt: number;
  attempts: number;
  state: "dead";
  reason: DeadReason;
  lastError: LastError;
  deadAt: number;
}

export interface EnqueueOptions {
  /** Your own idempotency key: 1 to 255 visible ASCII characters. Default: a new UUIDv7. */
  key?: string;
  /** Messages of one group are delivered in enqueue order; other groups never wait on them. */
  group?: string;
}

export interface FlushSummary {
  attempted: number;
  delivered: number;
  failed: number;
  dead: number;
}

export interface Stats {
  /** Messages not yet delivered or dead (in flight included). */
  pending: number;
  inFlight: number;
  dead: number;
  oldestPendingAgeMs: number | null;
  /** Requests sent since open. */
  attempts: number;
  /** Messages delivered since open. */
  delivered: number;
  online: boolean;
  /** Whether this tab is the one that sends for this outbox (one tab per name does). */
  sender: boolean;
}

export type OutboxEvent =
  | { type: "enqueued"; key: string; group: string | null }
  | { type: "sending"; key: string; attempt: number }
  | { type: "delivered"; key: string; group: string | null; attempts: number; status: number }
  | { type: "attempt-failed"; key: string; attempt: number; status?: number; message: string; counted: boolean }
  | { type: "retry-scheduled"; key: string; at: number; delayMs: number }
  | { type: "dead-lettered"; key: string; reason: DeadReason; lastError: LastError }
  | { type: "redriven"; key: string }
  | { type: "discarded"; key: string }
  | { type: "online" }
  | { type: "offline" }
  | { type: "flags-changed"; flags: Flags }
  | { type: "sender-changed"; sender: boolean }
  | { type: "storage-failed"; key: string | null; message: string };

/** The stable codes of `OutboxError`. */
export type OutboxErrorCode =
  | "invalid-options"
  | "invalid-payload"
  | "payload-too-large"
  | "invalid-key"
  | "invalid-group"
  | "duplicate-key"
  | "quota-exceeded"
  | "storage-error"
  | "closed"
  | "unsupported";

/** Every rejection of the outbox is an `Error` with this shape. */
export interface OutboxError extends Error {
  name: "OutboxError";
  code: OutboxErrorCode;
}

/**
 * A durable outbox.
 *
 * @example
 * import { Outbox } from "durable-outbox";
 * const outbox = await Outbox.open({ name: "notes", endpoint: "/v1/messages" });
 * const msg = await outbox.enqueue({ id: "n1", text: "hello" }, { group: "n1" });
 * // msg is in IndexedDB now; it is sent, retried, and dead-lettered if it cannot be.
 * outbox.subscribe((e) => { if (e.type === "dead-lettered") showFailed(e.key); });
 */
export class Outbox {
  private constructor();
  /** Opens (creating) the outbox and starts sending what it holds. Loads the wasm on first use. */
  static open(options: OutboxOptions): Promise<Outbox>;
  /** Resolves once the message is committed to IndexedDB. */
  enqueue<P = unknown>(payload: P, options?: EnqueueOptions): Promise<Message<P>>;
  /** Pending messages, oldest first. */
  pending(): Promise<Message[]>;
  /** Dead letters, oldest first. */
  deadLetters(): Promise<DeadLetter[]>;
  /** Moves dead letters (all, or these keys) back to pending with the SAME key and attempts reset. Resolves with how many moved. */
  retryDead(keys?: string[]): Promise<number>;
  /** Deletes dead letters (all, or these keys). Resolves with how many. */
  discardDead(keys?: string[]): Promise<number>;
  /** Attempts every pending message now, ignoring backoff and the retry flag. In a tab that does not send, asks the sending tab. */
  flush(): Promise<FlushSummary>;
  /** Applies at once and persists. */
  setFlags(flags: Partial<Flags>): Promise<Flags>;
  flags(): Flags;
  stats(): Stats;
  /** Stops automatic sends until `resume()`; `flush()` still sends. */
  pause(): void;
  resume(): void;
  /** Events arrive after the call that caused them has returned. */
  subscribe(listener: (event: OutboxEvent) => void): () => void;
  close(): Promise<void>;
  free(): void;
}
"#;
