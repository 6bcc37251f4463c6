/**
 * The relay: a WebSocket server that authenticates users by their identity key, stores prekeys, and
 * routes end-to-end-encrypted messages, receipts and group events it cannot read (see router.ts for
 * delivery and store.ts for durability). Nothing runs at import time; `startRelay` starts one relay.
 */
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';
import { formatFingerprint } from '../core/protocol/login.js';
import { MAX_FRAME_BYTES } from '../core/protocol/wire.js';
import { Connection } from './connection.js';
import type { RelayContext } from './context.js';
import { Groups } from './groups.js';
import { resolveOptions, type RelayOptions } from './options.js';
import { MemoryDeliveryQueue } from './queue/memory.js';
import { SqliteDeliveryQueue } from './queue/sqlite.js';
import type { DeliveryQueue } from './queue/index.js';
import { Router } from './router.js';
import { QUEUE_FILE, Store } from './store.js';
import { loadRelayKey, type RelayKey } from './relay-key.js';
import { join } from 'node:path';

export type { RateLimitOptions, RelayOptions } from './options.js';

/** A running relay. */
export interface Relay {
  /** ws:// URL clients connect to. */
  readonly url: string;
  readonly port: number;
  /** The relay's long-term public key (65-byte SEC1), which clients pin per address. */
  readonly publicKey: Uint8Array;
  /** Its fingerprint, 30 digits (login.ts relayKeyFingerprint): what an operator tells users. */
  readonly fingerprint: string;
  /** Closes every connection, stops the timers and closes the database; a second call is harmless. */
  close(): Promise<void>;
}

/** How long connections get to finish their close handshake at shutdown before they are dropped. */
const SHUTDOWN_GRACE_MS = 1000;

/** Starts a relay listening on `host:port` (port 0 picks a free one); in memory without `dataDir`. */
export async function startRelay(options: RelayOptions = {}): Promise<Relay> {
  const opts = resolveOptions(options);
  const log = opts.log;
  const onStorageError = (err: unknown): void => log(`database error: ${String(err)}`);
  const store = Store.open(opts.dataDir, onStorageError);
  let queue: DeliveryQueue;
  let relayKey: RelayKey;
  try {
    // After the store: its exclusive lock keeps a second relay from making a key in the same directory.
    relayKey = loadRelayKey(opts.dataDir, log);
    queue =
      opts.dataDir === undefined
        ? new MemoryDeliveryQueue()
        : await SqliteDeliveryQueue.open(join(opts.dataDir, QUEUE_FILE), onStorageError);
  } catch (err) {
    store.close();
    throw err;
  }
  store.seqsAbove(queue.maxSeq);
  const { renamed, removed } = store.canonicaliseUserIds();
  for (const id of removed) {
    queue.deleteRecipient(id);
    // What it sent stays queued for others, under a spelling the wire accepts (they cannot decrypt it).
    if (id !== id.toLowerCase()) queue.renameUser(id, id.toLowerCase());
    log(`removed user ${id}: registered after ${id.toLowerCase()} (user ids are lower case)`);
  }
  for (const [from, to] of renamed) {
    queue.renameUser(from, to);
    log(`user id ${from} is now ${to} (user ids are lower case)`);
  }
  const router = new Router(store, queue, opts);
  const ctx: RelayContext = {
    options: opts,
    relayKey,
    store,
    queue,
    router,
    groups: new Groups(store, router, opts.now),
    users: new Set(store.userIds()),
    log,
  };
  const connections = new Set<Connection>();

  const server = createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('This is a Sealed relay: connect with a WebSocket.\n');
  });
  const wss = new WebSocketServer({
    server,
    perMessageDeflate: false,
    maxPayload: MAX_FRAME_BYTES, // ws closes with 1009 above it
    clientTracking: true,
  });
  let nextId = 1;
  wss.on('connection', (ws, req) => {
    const label = `#${nextId++}`;
    log(`connect ${label} from ${req.socket.remoteAddress ?? '?'}`);
    connections.add(new Connection(ws, req.socket, ctx, label, (c) => connections.delete(c)));
  });
  wss.on('error', (err) => log(`server error: ${err.message}`));

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    wss.close();
    await queue.close();
    store.close();
    throw err;
  }
  server.on('error', (err) => log(`server error: ${err.message}`));

  const heartbeat = setInterval(() => {
    for (const c of connections) c.heartbeat();
  }, opts.heartbeatIntervalMs);

  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const url = `ws://${host}:${port}`;
  log(`relay listening on ${url}${opts.dataDir ? ` with data in ${opts.dataDir}` : ' (in memory)'}`);
  log(`relay key fingerprint ${formatFingerprint(relayKey.fingerprint)}`);

  let closing: Promise<void> | undefined;
  const shutdown = async (): Promise<void> => {
    clearInterval(heartbeat);
    wss.close(); // no new connections; does not close the server we own
    for (const c of connections) c.close(1001, 'relay shutting down');
    await untilClosed(connections, SHUTDOWN_GRACE_MS);
    for (const c of connections) c.terminate();
    await untilClosed(connections, SHUTDOWN_GRACE_MS);
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    await queue.close();
    store.close();
    log('relay closed');
  };
  return {
    url,
    port,
    publicKey: relayKey.publicKey,
    fingerprint: relayKey.fingerprint,
    close: () => (closing ??= shutdown()),
  };
}

/** Resolves when `connections` is empty or after `ms`, whichever is first; leaves no timer behind. */
function untilClosed(connections: Set<Connection>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const deadline = Date.now() + ms;
    const check = (): void => {
      if (connections.size === 0 || Date.now() >= deadline) resolve();
      else setTimeout(check, 10);
    };
    check();
  });
}
