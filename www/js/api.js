// The reference server's JSON endpoints, called with the demo's bearer token.
// (The outbox sends its own requests; these are the demo's side views.)

const TOKEN = "demo-token";

async function call(method, path, body) {
  const init = { method, cache: "no-store", headers: { Authorization: `Bearer ${TOKEN}` } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!res.ok) {
    const why = data && data.title ? `${data.title}${data.detail ? `: ${data.detail}` : ""}` : text;
    throw new Error(`${method} ${path} answered ${res.status} ${why}`);
  }
  return data;
}

export const api = {
  /** { retryEnabled, retryIntervalMs } */
  getFlags: () => call("GET", "/v1/flags"),
  putFlags: (flags) => call("PUT", "/v1/flags", flags),
  /** { fail, status, lostAck, latencyMs, spec } */
  getChaos: () => call("GET", "/admin/chaos"),
  putChaos: (chaos) => call("PUT", "/admin/chaos", chaos),
  /** { tenant, total, messages: [{ key, payload, receivedAt, seq }], replays, conflicts, mismatches } */
  getMessages: () => call("GET", "/v1/messages"),
};
