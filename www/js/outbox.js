// Opens the durable outbox that carries every note change to the server.

import { Outbox } from "/pkg/index.js";

/** The demo's sign-in: "revoked" makes the server answer 401 to the outbox. */
export const session = { revoked: false };

export function authHeaders() {
  return { Authorization: `Bearer ${session.revoked ? "revoked-token" : "demo-token"}` };
}

export function openOutbox() {
  return Outbox.open({
    name: "notes-demo",
    endpoint: location.origin + "/v1/messages",
    // Called before every send, so revoking or restoring the sign-in applies at once.
    getHeaders: authHeaders,
    // Generous, so that the chaos panel's 50% failures rarely exhaust a message.
    maxAttempts: 10,
    maxDelayMs: 15_000,
  });
}

/** Enqueues one note operation, in the note's group so its changes arrive in order. */
export function enqueueNote(outbox, op, note) {
  const payload = { op, id: note.id, title: note.title, body: note.body, rev: note.rev };
  return outbox.enqueue(payload, { group: note.id });
}
