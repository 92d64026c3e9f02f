// The app shell for offline reloads: a service worker (sw.js) that answers from the
// network first and falls back to a cache, and a first fill of that cache with every
// same-origin file this page loaded (the page, its modules, the package and its wasm).

export const SHELL_CACHE = "notes-demo-shell-v1";

const isApi = (path) => path.startsWith("/v1/") || path.startsWith("/admin/");

/** Resolves with a one-line status for the connection panel. */
export async function enableOfflineShell() {
  if (!("serviceWorker" in navigator) || !("caches" in window)) {
    return "Offline copy of the app: not supported in this browser (reloading offline will fail).";
  }
  await navigator.serviceWorker.register("/sw.js", { scope: "/" });
  if (!navigator.onLine) return "Offline copy of the app: in use (loaded from the cache).";
  const urls = new Set([location.origin + "/"]);
  for (const entry of performance.getEntriesByType("resource")) {
    const url = new URL(entry.name);
    if (url.origin === location.origin && !isApi(url.pathname)) urls.add(url.origin + url.pathname);
  }
  const cache = await caches.open(SHELL_CACHE);
  const results = await Promise.allSettled([...urls].map((u) => cache.add(u)));
  const failed = results.filter((r) => r.status === "rejected").length;
  if (failed === urls.size) throw new Error("nothing could be cached");
  return `Offline copy of the app: ready (${urls.size - failed} files cached; you can reload while offline).`;
}
