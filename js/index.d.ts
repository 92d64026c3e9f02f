// The hand-written declarations live in the wasm-bindgen output (one custom section in
// src/browser/types.rs); this entry re-exports them.
export * from "./durable_outbox.js";
