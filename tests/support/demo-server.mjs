// The real reference server (target/debug/outbox-server) serving the notes demo, for
// tests/e2e/demo.test.mjs: built with cargo when the binary is missing, started on
// 127.0.0.1:0 with an in-memory store, its port read from its "listening on" line.
//
// const server = await startDemoServer();
// server.url, await server.api("GET", "/v1/messages"), server.output(), await server.close()
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { REPO_ROOT } from "./test-server.mjs";

export const SERVER_BIN = path.join(REPO_ROOT, "target", "debug", "outbox-server");
export const TOKEN = "demo-token";

/** Builds the server binary if it is not there (cargo test --workspace builds it too). */
export function ensureServerBinary() {
  if (fs.existsSync(SERVER_BIN)) return;
  const cargoBin = path.join(process.env.CARGO_HOME || path.join(os.homedir(), ".cargo"), "bin");
  const env = { ...process.env, PATH: `${cargoBin}${path.delimiter}${process.env.PATH}` };
  const r = spawnSync("cargo", ["build", "-p", "outbox-server"], { cwd: REPO_ROOT, env, stdio: "inherit" });
  if (r.status !== 0 || !fs.existsSync(SERVER_BIN)) throw new Error(`cargo build -p outbox-server failed (exit ${r.status})`);
}

// The server reads every flag from OUTBOX_* too: none may leak in from the caller.
function serverEnv() {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith("OUTBOX_")) delete env[k];
  return env;
}

export async function startDemoServer({ args = [], timeoutMs = 15_000 } = {}) {
  ensureServerBinary();
  const child = spawn(
    SERVER_BIN,
    ["--listen", "127.0.0.1:0", "--db", ":memory:", "--www", "www", "--pkg", "pkg", ...args],
    { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"], env: serverEnv() },
  );
  let out = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d) => (out += d));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not print its address within ${timeoutMs} ms:\n${out}`)), timeoutMs);
    child.stdout.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code}) before listening:\n${out}`));
    });
  });
  child.removeAllListeners("exit");
  const exited = new Promise((r) => child.once("exit", r));

  async function api(method, p, body) {
    const res = await fetch(url + p, {
      method,
      headers: { Authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${p} answered ${res.status}: ${text}`);
    return text ? JSON.parse(text) : null;
  }

  return {
    url,
    api,
    output: () => out,
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
