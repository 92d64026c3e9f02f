// The notes: a form to write or edit one, and the list, each with its sync state.

import { $, el, syncList, setText, announce } from "../dom.js";
import { loadNotes, putNote, removeNote } from "../notes-store.js";
import { enqueueNote } from "../outbox.js";

export function mountNotes(ctx) {
  const form = $("note-form");
  const idInput = $("note-id");
  const title = $("note-title");
  const body = $("note-body");
  const editing = $("note-editing");
  const list = $("notes-list");
  const empty = $("notes-empty");

  function startNew() {
    idInput.value = "";
    form.reset();
    setText(editing, "Writing a new note.");
  }

  function edit(note) {
    idInput.value = note.id;
    title.value = note.title;
    body.value = note.body;
    setText(editing, `Editing “${note.title}” (rev ${note.rev}).`);
    title.focus();
  }

  async function enqueue(op, note) {
    try {
      await enqueueNote(ctx.outbox, op, note);
    } catch (e) {
      ctx.fail(`Could not queue the change to “${note.title}”: ${e.code || e.name}: ${e.message}`);
    }
    ctx.refresh();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const note = putNote({ id: idInput.value || null, title: title.value.trim(), body: body.value });
    render();
    announce(`Saved “${note.title}”; it will sync when it can.`);
    startNew();
    title.focus();
    await enqueue("upsert", note);
  });
  $("note-new").addEventListener("click", () => {
    startNew();
    title.focus();
  });

  async function remove(note) {
    const gone = removeNote(note.id);
    if (!gone) return;
    if (idInput.value === note.id) startNew();
    render();
    announce(`Deleted “${note.title}”.`);
    await enqueue("delete", gone);
  }

  function syncState(note) {
    if (ctx.state.dead.some((m) => m.group === note.id)) return ["failed", "sync failed"];
    if (ctx.state.pending.some((m) => m.group === note.id)) return ["pending", "waiting to sync"];
    return ["synced", "synced"];
  }

  function render() {
    const notes = loadNotes();
    empty.hidden = notes.length > 0;
    syncList(
      list,
      notes,
      (n) => n.id,
      () => {
        const item = el("li", { class: "note" });
        const head = el("div", { class: "row" }, el("h3", { class: "note-title" }), el("span", { class: "badge" }));
        const text = el("p", { class: "note-body" });
        const meta = el("p", { class: "meta" });
        const buttons = el(
          "div",
          { class: "buttons" },
          el("button", { type: "button", class: "secondary edit" }, "Edit"),
          el("button", { type: "button", class: "danger delete" }, "Delete"),
        );
        item.append(head, text, meta, buttons);
        return item;
      },
      (item, note) => {
        setText(item.querySelector(".note-title"), note.title || "(untitled)");
        setText(item.querySelector(".note-body"), note.body || "");
        setText(item.querySelector(".meta"), `rev ${note.rev} · ${new Date(note.updatedAt).toLocaleString()}`);
        const [state, label] = syncState(note);
        const badge = item.querySelector(".badge");
        badge.dataset.state = state;
        setText(badge, label);
        const editBtn = item.querySelector(".edit");
        const delBtn = item.querySelector(".delete");
        editBtn.setAttribute("aria-label", `Edit “${note.title}”`);
        delBtn.setAttribute("aria-label", `Delete “${note.title}”`);
        editBtn.onclick = () => edit(note);
        delBtn.onclick = () => remove(note);
      },
    );
  }

  return { render };
}
