// The notes themselves, in localStorage (the outbox keeps its own IndexedDB database).
// A note: { id, title, body, rev, updatedAt }. `rev` grows by one on every save or delete.

const STORAGE_KEY = "notes-demo/notes";

export function loadNotes() {
  try {
    const notes = JSON.parse(localStorage.getItem(STORAGE_KEY) || "[]");
    return Array.isArray(notes) ? notes : [];
  } catch {
    return [];
  }
}

function store(notes) {
  localStorage.setItem(STORAGE_KEY, JSON.stringify(notes));
}

function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return `n-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

/** Creates or updates a note; returns the stored note (its rev bumped). */
export function putNote({ id, title, body }) {
  const notes = loadNotes();
  const old = id ? notes.find((n) => n.id === id) : null;
  const note = { id: old ? old.id : newId(), title, body, rev: old ? old.rev + 1 : 1, updatedAt: Date.now() };
  store(old ? notes.map((n) => (n.id === note.id ? note : n)) : [note, ...notes]);
  return note;
}

/** Removes a note; returns it with its rev bumped (the delete's rev), or null. */
export function removeNote(id) {
  const notes = loadNotes();
  const old = notes.find((n) => n.id === id);
  if (!old) return null;
  store(notes.filter((n) => n.id !== id));
  return { ...old, rev: old.rev + 1, updatedAt: Date.now() };
}
