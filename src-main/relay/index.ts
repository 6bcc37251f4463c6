/**
 * The relay: a WebSocket server that authenticates users by their identity key, stores prekeys, and
 * routes end-to-end-encrypted messages, receipts and group events it cannot read (see router.ts for
 * delivery and store.ts for durability). Nothing runs at import time; `startRelay` starts one relay.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { join } from 'node:path';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { WebSocketServer } from 'ws';
import { formatFingerprint } from '../core/protocol/login.js';
import { MAX_FRAME_BYTES, RelayErrorCode } from '../core/protocol/wire.js';
import { Connection } from './connection.js';
import type { RelayContext } from './context.js';
import { Groups } from './groups.js';
import { createLimits, mailboxHasRoom } from './limits.js';
import { Health } from './health.js';
import { httpHandler } from './http.js';
import { RelayLogger, errorText } from './log.js';
import { RelayMetrics } from './metrics.js';
import { resolveOptions, type RelayOptions } from './options.js';
import { MemoryDeliveryQueue } from './queue/memory.js';
import { SqliteDeliveryQueue } from './queue/sqlite.js';
import type { DeliveryQueue } from './queue/index.js';
import { Router } from './router.js';
import { QUEUE_FILE, Store } from './store.js';
import { loadRelayKey, type RelayKey } from './relay-key.js';
import { StorageState } from './storage.js';

export type { MetricsAccess, RateLimitOptions, RelayOptions } from './options.js';
export type { LogEvent, LogLevel, LogRecord, RelayLog } from './log.js';
export { StorageStartError } from './storage.js';

/** A running relay. */
export interface Relay {
  /** URL clients connect to: wss:// with `tlsCert` and `tlsKey`, ws:// without. */
  readonly url: string;
  readonly port: number;
  /**
   * Reads `tlsCert` and `tlsKey` again and presents them to new connections (a renewed certificate,
   * without a restart); open connections keep theirs. Throws, keeping the old pair, if the files do not
   * make a valid pair, and TypeError for a relay without TLS.
   */
  reloadTls(): void;
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
  const log = new RelayLogger(opts.log);
  // Before any database is opened: a wrong certificate file changes nothing.
  const tls = opts.tlsCert === undefined ? undefined : readTls(opts.tlsCert, opts.tlsKey!);
  const connections = new Set<Connection>();
  const health = new Health();
  const metrics = opts.metrics === false ? undefined : new RelayMetrics(opts.now, opts.processMetrics);
  // Probes the store and the queue, both opened below (a failure before that stops the start).
  const storage = new StorageState(
    async () => {
      store.probe();
      await queue.probe();
    },
    opts.storageProbeIntervalMs,
    log,
    metrics,
    () => {
      // Connections refused for storage send what they kept again, in order, on a new connection.
      for (const c of connections) if (c.storageRefused) c.close(1013, 'storage available again');
    },
  );
  const onStorageError = (err: unknown): void => {
    metrics?.storageError();
    // A full disk or a read-only directory is a state, logged once when it starts (storage.ts).
    if (!storage.failed(err))
      log.error('storage_error', `database error: ${String(err)}`, { error: errorText(err) });
  };
  const onAcknowledged = (ts: number): void => metrics?.acknowledged(ts);
  const store = Store.open(opts.dataDir, onStorageError);
  if (store.droppedLegacyGroups > 0)
    log.warn(
      'groups_dropped',
      `dropped ${store.droppedLegacyGroups} groups made before signed membership; their members must create them again`,
    );
  let queue: DeliveryQueue;
  let relayKey: RelayKey;
  try {
    // After the store: its exclusive lock keeps a second relay from making a key in the same directory.
    relayKey = loadRelayKey(opts.dataDir, log);
    queue =
      opts.dataDir === undefined
        ? new MemoryDeliveryQueue(onAcknowledged)
        : await SqliteDeliveryQueue.open(join(opts.dataDir, QUEUE_FILE), onStorageError, onAcknowledged);
  } catch (err) {
    store.close();
    throw err;
  }
  health.add(storage);
  store.seqsAbove(queue.maxSeq);
  const { renamed, removed } = store.canonicaliseUserIds();
  for (const id of removed) {
    queue.deleteRecipient(id);
    // What it sent stays queued for others, under a spelling the wire accepts (they cannot decrypt it).
    if (id !== id.toLowerCase()) queue.renameUser(id, id.toLowerCase());
  }
  for (const [from, to] of renamed) queue.renameUser(from, to);
  // Counts only: the log never names users (log.ts).
  if (removed.length > 0 || renamed.length > 0)
    log.warn(
      'user_ids_canonicalised',
      `user ids are lower case now: ${renamed.length} renamed, ${removed.length} removed (registered after the same id in another case)`,
    );
  const limits = createLimits(opts.limits, opts.now);
  const router = new Router(store, queue, opts, log, metrics);
  const ctx: RelayContext = {
    options: opts,
    relayKey,
    store,
    queue,
    router,
    groups: new Groups(store, router, store, opts.now, opts.limits, (recipient, bytes) =>
      mailboxHasRoom(queue, opts.limits, recipient, bytes),
    ),
    limits,
    users: new Set(store.userIds()),
    log,
    storage,
    metrics,
  };
  metrics?.readFrom({
    connections: () => ({ open: connections.size, authenticated: router.onlineCount }),
    users: () => ctx.users.size,
    groups: () => ctx.groups.count,
    queue: () => queue.stats(),
    health: () => health.states(),
  });

  const onHttp = httpHandler(health, metrics, opts.metrics, (err) =>
    log.error('server_error', `metrics failed: ${errorText(err)}`, { error: errorText(err) }),
  );
  const tlsServer = tls && createTlsServer(tls, onHttp);
  // Clients that do not trust the certificate, scanners, plain-text clients: counted, not logged (the
  // internet's background noise would fill the log).
  tlsServer?.on('tlsClientError', () => metrics?.tlsFailure());
  const server: Server = tlsServer || createServer(onHttp);
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
        log.warn('rate_limited', `refused a connection from ${address}: too many per minute`, {
          ip: address,
        });
        // Counted with the error frames it stands for (no frame can be sent before the upgrade).
        metrics?.refused(RelayErrorCode.RATE_LIMITED);
        done(false, 429, 'Too many connections from your address; try again in a minute');
      }
    },
  });
  let nextId = 1;
  wss.on('connection', (ws, req) => {
    const label = `#${nextId++}`;
    const ip = req.socket.remoteAddress ?? '?';
    metrics?.connectionOpened();
    log.info('connect', `connect ${label} from ${ip}`, { conn: label, ip });
    connections.add(new Connection(ws, req.socket, ctx, label, (c) => connections.delete(c)));
  });
  wss.on('error', (err) => log.error('server_error', `server error: ${err.message}`, { error: err.message }));

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
  server.on('error', (err) =>
    log.error('server_error', `server error: ${err.message}`, { error: err.message }),
  );

  const heartbeat = setInterval(() => {
    for (const c of connections) c.heartbeat();
  }, opts.heartbeatIntervalMs);

  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const url = `${tls ? 'wss' : 'ws'}://${host}:${port}`;
  log.info(
    'listening',
    `relay listening on ${url}${opts.dataDir ? ` with data in ${opts.dataDir}` : ' (in memory)'}`,
    {
      url,
      ...(opts.dataDir === undefined ? {} : { dataDir: opts.dataDir }),
      metrics: opts.metrics === false ? 'off' : opts.metrics,
    },
  );
  log.info('relay_key', `relay key fingerprint ${formatFingerprint(relayKey.fingerprint)}`);

  let closing: Promise<void> | undefined;
  const shutdown = async (): Promise<void> => {
    health.stop();
    storage.stop();
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
    log.info('closed', 'relay closed');
  };
  return {
    url,
    port,
    reloadTls: () => {
      if (!tlsServer) throw new TypeError('this relay does not serve TLS (start it with tlsCert and tlsKey)');
      tlsServer.setSecureContext(readTls(opts.tlsCert!, opts.tlsKey!));
      log.info('tls_reloaded', `TLS certificate reloaded from ${opts.tlsCert}`);
    },
    publicKey: relayKey.publicKey,
    fingerprint: relayKey.fingerprint,
    close: () => (closing ??= shutdown()),
  };
}

/**
 * Reads a certificate chain and its key (PEM) and checks that they make a pair, so that a wrong file is
 * named at start rather than in every client's failed handshake.
 */
function readTls(certFile: string, keyFile: string): SecureContextOptions {
  const read = (what: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`Cannot read the TLS ${what} ${file}: ${errorText(err)}`, { cause: err });
    }
  };
  const pair = { cert: read('certificate', certFile), key: read('key', keyFile) };
  try {
    createSecureContext(pair);
  } catch (err) {
    throw new Error(
      `The TLS certificate ${certFile} and key ${keyFile} are not a usable pair (PEM files, the key of that certificate): ${errorText(err)}`,
      { cause: err },
    );
  }
  return pair;
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
