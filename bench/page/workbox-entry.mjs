// esbuild entry for the Workbox peer: bundled by bench/run.mjs into the bench page's
// www dir as workbox.js (process.env.NODE_ENV defined as "production", as an app
// bundler would, so Workbox's development-only asserts and logs are compiled out).
export { QueueStore, StorableRequest } from "workbox-background-sync";
