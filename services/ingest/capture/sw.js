// The capture app's service worker: the app itself is kept on the device, so it opens with no
// signal. The events are not kept here but in the outbox (IndexedDB), and are never sent by
// this worker: requests to the API pass straight through.
const CACHE = "opsledger-capture-v1";
const SHELL = [
  "/capture",
  "/capture/app.js",
  "/capture/token.js",
  "/capture/outbox.js",
  "/capture/sender.js",
  "/capture/forms.js",
  "/capture/money.js",
  "/capture/style.css",
  "/capture/icon.svg",
  "/capture/manifest.webmanifest",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("opsledger-capture-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

// The app's own files: from the device at once, refreshed from the network behind the scenes
// (the next start gets the new version).
self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  const ours = url.origin === self.location.origin && SHELL.includes(url.pathname);
  if (event.request.method !== "GET" || !ours) return;
  event.respondWith(
    caches.open(CACHE).then(async (cache) => {
      const kept = await cache.match(url.pathname);
      const fresh = fetch(event.request)
        .then((response) => {
          if (response.ok) cache.put(url.pathname, response.clone());
          return response;
        })
        .catch(() => null);
      if (kept) {
        event.waitUntil(fresh);
        return kept;
      }
      return (await fresh) || Response.error();
    }),
  );
});
