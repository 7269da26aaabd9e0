// The on-device outbox: every event recorded, in IndexedDB, from the moment it is saved.
// An entry: {event_id, event, state, errors, detail, created, updated}. States: waiting (not
// yet sent), sent (a request carrying it is on its way), accepted (ingest answered that it is
// in the log), refused (the contract refused it: errors name the fields), conflict (the ledger
// refused it as conflicting). Writes use strict durability: once save() resolves, a flat
// battery does not lose the entry.
const DB_NAME = "opsledger-capture";
const STORE = "outbox";
let opened = null;

function open() {
  if (!opened) {
    opened = new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = () => {
        request.result.createObjectStore(STORE, { keyPath: "event_id" });
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }
  return opened;
}

async function run(mode, work) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const options = mode === "readwrite" ? { durability: "strict" } : undefined;
    const tx = db.transaction(STORE, mode, options);
    let result;
    const request = work(tx.objectStore(STORE));
    if (request) request.onsuccess = () => { result = request.result; };
    tx.oncomplete = () => resolve(result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

export function save(entry) {
  return run("readwrite", (store) => store.put({ ...entry, updated: Date.now() }));
}

export function get(eventId) {
  return run("readonly", (store) => store.get(eventId));
}

export async function all() {
  const entries = (await run("readonly", (store) => store.getAll())) || [];
  return entries.sort((a, b) => a.created - b.created);
}

export function remove(eventId) {
  return run("readwrite", (store) => store.delete(eventId));
}

// Change several entries in one transaction: change(entry) returns the new entry.
export function change(eventIds, changeOne) {
  return run("readwrite", (store) => {
    for (const id of eventIds) {
      const read = store.get(id);
      read.onsuccess = () => {
        if (read.result) store.put({ ...changeOne(read.result), updated: Date.now() });
      };
    }
    return null;
  });
}

export const PENDING = new Set(["waiting", "sent"]);

export async function pendingCount() {
  return (await all()).filter((e) => PENDING.has(e.state)).length;
}
