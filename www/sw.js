// The demo's service worker: network first (so a rebuilt demo is always fresh), the
// cache when the network fails (so the notes app reloads while offline). The API
// (/v1/, /admin/) is never cached: the outbox must see real network failures.
const CACHE = "notes-demo-shell-v1";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/v1/") || url.pathname.startsWith("/admin/")) return;
  event.respondWith(
    (async () => {
      try {
        const res = await fetch(req);
        if (res.ok) {
          const cache = await caches.open(CACHE);
          await cache.put(url.origin + url.pathname, res.clone());
        }
        return res;
      } catch (err) {
        const hit = await caches.match(url.origin + url.pathname);
        if (hit) return hit;
        throw err;
      }
    })(),
  );
});
