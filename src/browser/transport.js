// Sending, in JavaScript: one request with a timeout, by `fetch` or the app's own
// `transport`, reduced to what the engine needs. Every function resolves (never
// rejects) with {status, retryAfter} for an answer, or {error, timedOut} for none.
// src/browser/transport.rs binds these and turns their answers into outcomes.

const describe = (e) => (e && e.message) || String(e);

/** Runs `work(signal)`, aborting it after `timeoutMs`; a failure becomes {error, timedOut}. */
async function withDeadline(timeoutMs, what, work) {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  // Whatever the work awaits (the app's code included) loses the race to the deadline.
  const aborted = new Promise((_, reject) =>
    controller.signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true }),
  );
  try {
    return await Promise.race([work(controller.signal), aborted]);
  } catch (e) {
    return { error: `${what}${describe(e)}`, timedOut };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * POSTs the JSON text `body` with the static `headers` ([name, value] pairs), then
 * those `getHeaders()` returns, then Content-Type and (if `key` is given)
 * Idempotency-Key, set last so that no app header can replace them. The answer's body
 * is read (a batch's results are in it, and a drained body frees the connection).
 */
function post(url, headers, getHeaders, key, body, timeoutMs) {
  return withDeadline(timeoutMs, "", async (signal) => {
    const all = new Headers(headers);
    if (getHeaders) {
      let fresh;
      try {
        fresh = await getHeaders();
      } catch (e) {
        return { error: `getHeaders failed: ${describe(e)}` };
      }
      if (fresh != null) new Headers(fresh).forEach((value, name) => all.set(name, value));
    }
    all.set("Content-Type", "application/json");
    if (key != null) all.set("Idempotency-Key", key);
    const response = await fetch(url, { method: "POST", headers: all, body, signal });
    const retryAfter = response.headers.get("Retry-After");
    const text = await response.text();
    return { status: response.status, retryAfter, text };
  });
}

/** Sends one message to `url`. */
export function postOne(url, headers, getHeaders, key, body, timeoutMs) {
  return post(url, headers, getHeaders, key, body, timeoutMs).then(({ text, ...answer }) => answer);
}

/**
 * Sends several messages in one `POST {"items": [{key, payload}]}`. Resolves with
 * {results: [answer per item, in order]} when the batch was answered with 200, else
 * with the one answer (or failure) that stands for every item.
 */
export async function postBatch(url, headers, getHeaders, keys, bodies, timeoutMs) {
  const items = keys.map((key, i) => `{"key":${JSON.stringify(key)},"payload":${bodies[i]}}`);
  const { text, ...answer } = await post(url, headers, getHeaders, null, `{"items":[${items.join(",")}]}`, timeoutMs);
  if (answer.status !== 200) return answer;
  let results = [];
  try {
    results = JSON.parse(text).results;
  } catch {
    // Not JSON: every item below gets "no result".
  }
  return {
    results: keys.map((key, i) => {
      const r = Array.isArray(results) ? results[i] : undefined;
      if (!r || r.key !== key || typeof r.status !== "number") {
        return { error: "the batch answer has no result for this item" };
      }
      return { status: r.status, retryAfter: r.retryAfter == null ? null : String(r.retryAfter) };
    }),
  };
}

/**
 * Calls the app's `transport({key, payload, group, attempt, signal})` and expects
 * `{status, headers?}` back.
 */
export function callTransport(transport, key, body, group, attempt, timeoutMs) {
  return withDeadline(timeoutMs, "transport failed: ", async (signal) => {
    const result = await transport({ key, payload: JSON.parse(body), group, attempt, signal });
    const status = result && result.status;
    if (!Number.isInteger(status) || status < 100 || status > 599) {
      return { error: "transport returned no valid status" };
    }
    let retryAfter = null;
    try {
      if (result.headers != null) retryAfter = new Headers(result.headers).get("Retry-After");
    } catch {
      // Unreadable headers: no Retry-After.
    }
    return { status, retryAfter };
  });
}
