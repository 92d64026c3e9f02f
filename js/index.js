// The package entry. wasm-bindgen's `--target web` output needs an init call; this file
// makes it implicit: the first `Outbox.open` loads the wasm (once), in a bundler and in a
// plain page alike, because the wasm is found relative to this module's own URL.
import init, { Outbox } from "./durable_outbox.js";

let loading;
function load() {
  loading ??= init({ module_or_path: new URL("./durable_outbox_bg.wasm", import.meta.url) });
  return loading;
}

const open = Outbox.open;
Outbox.open = async function (options) {
  await load();
  return open.call(Outbox, options);
};

export { Outbox };
