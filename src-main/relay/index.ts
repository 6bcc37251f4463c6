/**
 * The relay: a WebSocket server that authenticates users by their identity key, stores prekeys, and
 * routes end-to-end-encrypted messages, receipts and group events it cannot read (see router.ts for
 * delivery and store.ts for durability). Nothing runs at import time; `startRelay` starts one relay.
 */
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';
import { MAX_FRAME_BYTES } from '../core/protocol/wire.js';
import { Connection } from './connection.js';
import type { RelayContext } from './context.js';
import { Groups } from './groups.js';
import { createLimits } from './limits.js';
import { resolveOptions, type RelayOptions } from './options.js';
import { MemoryDeliveryQueue } from './queue/memory.js';
import { SqliteDeliveryQueue } from './queue/sqlite.js';
import type { DeliveryQueue } from './queue/index.js';
import { Router } from './router.js';
import { QUEUE_FILE, Store } from './store.js';
import { join } from 'node:path';

export type { RateLimitOptions, RelayOptions } from './options.js';

/** A running relay. */
export interface Relay {
  /** ws:// URL clients connect to. */
  readonly url: string;
  readonly port: number;
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
  try {
    queue =
      opts.dataDir === undefined
        ? new MemoryDeliveryQueue()
        : await SqliteDeliveryQueue.open(join(opts.dataDir, QUEUE_FILE), onStorageError);
  } catch (err) {
    store.close();
    throw err;
  }
  store.seqsAbove(queue.maxSeq);
  const router = new Router(store, queue, opts);
  const limits = createLimits(opts.limits, opts.now);
  const ctx: RelayContext = {
    options: opts,
    store,
    queue,
    router,
    groups: new Groups(store, router, store, opts.now, opts.limits),
    limits,
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
    // New connections per address: refused before the upgrade, with 429.
    verifyClient: (info, done) => {
      const address = info.req.socket.remoteAddress;
      if (limits.exempt(address) || limits.connections.take(address ?? '?')) done(true);
      else {
        log(`refused a connection from ${address}: too many per minute`);
        done(false, 429, 'Too many connections from your address; try again in a minute');
      }
    },
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
