/**
 * Relay options, resolved the way ws resolves its server options: defaults first, then the caller's,
 * every limit named here, and anything unknown, mistyped or contradictory rejected once at start.
 */
import { MAX_ROSTER } from '../core/crypto/membership.js';
import { normaliseRelayUrl } from '../core/protocol/login.js';
import { MAX_FRAME_BYTES } from '../core/protocol/wire.js';
import type { RelayLog } from './log.js';

/** Per-connection token bucket on incoming frames. */
export interface RateLimitOptions {
  /** Sustained frames per second (default 300). `Infinity` disables rate limiting. */
  framesPerSecond?: number;
  /** Frames a connection may send at once before the sustained rate applies (default 600). */
  burst?: number;
}

/**
 * What users and network addresses may make the relay do (issue 9: abuse resistance). Every limit has a
 * default that keeps one abusive account or address from locking others out or filling the disk;
 * `Infinity` turns a budget off. docs/PROTOCOL.md (Limits) says what each protects.
 */
export interface LimitOptions {
  /** People a group's roster may hold, in any standing (default 1,000). */
  groupMembers?: number;
  /**
   * Groups one user may choose to be on (invitations not accepted do not count), and rosters others may
   * put them on by invitation, any standing (default 200).
   */
  groupsPerUser?: number;
  /** Items waiting in one recipient's mailbox (default 20,000). */
  queuedItemsPerRecipient?: number;
  /** Bytes of message bodies waiting in one recipient's mailbox (default 64 MiB). */
  queuedBytesPerRecipient?: number;
  /** Bytes one sender's group messages may fan out per minute: body × recipients (default 64 MiB). */
  groupFanoutBytesPerMinute?: number;
  /** New connections per IP address per minute (default 120). */
  connectionsPerIpPerMinute?: number;
  /** New accounts per IP address per minute (default 10). */
  registrationsPerIpPerMinute?: number;
  /**
   * Apply the per-address limits to loopback connections too (default false: the app's own connection
   * and a reverse proxy on the same machine come from loopback).
   */
  limitLoopback?: boolean;
  /** Prekey bundles one user may ask for per minute (default 300); more are held back, not refused. */
  bundleRequestsPerMinute?: number;
  /** One-time prekeys of one user handed out per minute (default 30); beyond, bundles come without one. */
  oneTimePreKeysPerTargetPerMinute?: number;
  /** One-time prekeys one requester may take per minute, all users together (default 60); likewise. */
  oneTimePreKeysPerRequesterPerMinute?: number;
}

/**
 * Who may read `GET /metrics`: `'loopback'` only requests from this computer (127.0.0.0/8, ::1) that
 * no proxy forwarded; `'open'` anyone who reaches the port; `false` none (nothing is collected).
 */
export type MetricsAccess = 'loopback' | 'open' | false;

/** Options of `startRelay`. */
export interface RelayOptions {
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** TCP port; 0 picks a free one (default 0). */
  port?: number;
  /** Directory of the SQLite database; without it the relay keeps everything in memory. */
  dataDir?: string;
  /** WebSocket ping interval; a peer that did not pong since the previous ping is dropped (default 30 s). */
  heartbeatIntervalMs?: number;
  /**
   * While the relay cannot write its storage (a full disk, a read-only directory), a probe write runs
   * this often; the first that succeeds ends the storage-unavailable state (default 2 s).
   */
  storageProbeIntervalMs?: number;
  /** A live recipient whose unsent buffer grows beyond this is closed as a slow consumer (default 4 MiB). */
  maxBufferedBytes?: number;
  /** Incoming frame rate limit per connection. */
  rateLimit?: RateLimitOptions;
  /** A connection that has not authenticated within this is closed (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Quotas and budgets per user and per address (see LimitOptions). */
  limits?: LimitOptions;
  /**
   * PEM file of the certificate chain the relay presents: with `tlsKey`, the relay serves `wss://`
   * (and its health and metrics over HTTPS) instead of `ws://`. Read at start and by `reloadTls()`.
   */
  tlsCert?: string;
  /** PEM file of the private key of `tlsCert`; both or neither. */
  tlsKey?: string;
  /** Who may read the Prometheus metrics at `GET /metrics` (default `'loopback'`). */
  metrics?: MetricsAccess;
  /**
   * Also report the process's own metrics (CPU, memory, event-loop delay, GC: prom-client's defaults),
   * collected once per process from the first relay that asks (default false: an embedder's process
   * is its own business; `npm run relay` turns it on).
   */
  processMetrics?: boolean;
  /**
   * Receives one line per connection or server event, and the same event as a record with fields
   * (log.ts); never message content, keys or user ids (default: no-op).
   */
  log?: RelayLog;
  /** Clock for timestamps and timeouts, in ms since the epoch (default Date.now). */
  now?: () => number;
  /**
   * The addresses clients reach this relay at (ws:// or wss:// URLs). When given, a login signed for any
   * other address is refused, so nobody can pass this relay's challenges on at an address of their own
   * (docs/PROTOCOL.md "Authentication"). Default: any address (the relay cannot know its names).
   */
  publicUrls?: readonly string[] | undefined;
}

/** Options after defaults and validation. */
export interface ResolvedOptions {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string | undefined;
  readonly heartbeatIntervalMs: number;
  readonly storageProbeIntervalMs: number;
  readonly maxBufferedBytes: number;
  readonly rateLimit: { readonly framesPerSecond: number; readonly burst: number };
  readonly handshakeTimeoutMs: number;
  readonly limits: Readonly<Required<LimitOptions>>;
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  readonly metrics: MetricsAccess;
  readonly processMetrics: boolean;
  readonly log: RelayLog;
  readonly now: () => number;
  /** Normalised; undefined: any address. */
  readonly publicUrls: readonly string[] | undefined;
}

/** The defaults, applied before the caller's options. */
export const DEFAULT_OPTIONS: ResolvedOptions = Object.freeze({
  host: '127.0.0.1',
  port: 0,
  dataDir: undefined,
  heartbeatIntervalMs: 30_000,
  storageProbeIntervalMs: 2_000,
  maxBufferedBytes: 4 * 1024 * 1024,
  rateLimit: Object.freeze({ framesPerSecond: 300, burst: 600 }),
  handshakeTimeoutMs: 10_000,
  limits: Object.freeze({
    groupMembers: 1_000,
    groupsPerUser: 200,
    queuedItemsPerRecipient: 20_000,
    queuedBytesPerRecipient: 64 * 1024 * 1024,
    groupFanoutBytesPerMinute: 64 * 1024 * 1024,
    connectionsPerIpPerMinute: 120,
    registrationsPerIpPerMinute: 10,
    limitLoopback: false,
    bundleRequestsPerMinute: 300,
    oneTimePreKeysPerTargetPerMinute: 30,
    oneTimePreKeysPerRequesterPerMinute: 60,
  }),
  tlsCert: undefined,
  tlsKey: undefined,
  metrics: 'loopback',
  processMetrics: false,
  log: () => {},
  now: Date.now,
  publicUrls: undefined,
});

/** Node timers overflow (and fire at once) above 2^31-1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const KNOWN = new Set<string>(Object.keys(DEFAULT_OPTIONS));
const KNOWN_RATE = new Set(['framesPerSecond', 'burst']);
const KNOWN_LIMITS = new Set<string>(Object.keys(DEFAULT_OPTIONS.limits));

/** An integer count limit, or Infinity (off). */
function count(name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (v === Infinity) return v;
  return integer(name, v, min, max);
}

function resolveLimits(value: unknown): Readonly<Required<LimitOptions>> {
  if (typeof value !== 'object' || value === null) throw new TypeError('limits must be an object');
  for (const key of Object.keys(value))
    if (!KNOWN_LIMITS.has(key)) throw new TypeError(`unknown option "limits.${key}"`);
  const l = { ...DEFAULT_OPTIONS.limits, ...stripUndefined(value as LimitOptions) };
  if (typeof l.limitLoopback !== 'boolean') throw new TypeError('limits.limitLoopback must be a boolean');
  return Object.freeze({
    groupMembers: integer('limits.groupMembers', l.groupMembers, 2, MAX_ROSTER),
    groupsPerUser: count('limits.groupsPerUser', l.groupsPerUser, 1),
    queuedItemsPerRecipient: count('limits.queuedItemsPerRecipient', l.queuedItemsPerRecipient, 1),
    // At least one largest message must fit a mailbox.
    queuedBytesPerRecipient: count(
      'limits.queuedBytesPerRecipient',
      l.queuedBytesPerRecipient,
      MAX_FRAME_BYTES,
    ),
    groupFanoutBytesPerMinute: count(
      'limits.groupFanoutBytesPerMinute',
      l.groupFanoutBytesPerMinute,
      MAX_FRAME_BYTES,
    ),
    connectionsPerIpPerMinute: count('limits.connectionsPerIpPerMinute', l.connectionsPerIpPerMinute, 1),
    registrationsPerIpPerMinute: count(
      'limits.registrationsPerIpPerMinute',
      l.registrationsPerIpPerMinute,
      1,
    ),
    limitLoopback: l.limitLoopback,
    bundleRequestsPerMinute: count('limits.bundleRequestsPerMinute', l.bundleRequestsPerMinute, 1),
    oneTimePreKeysPerTargetPerMinute: count(
      'limits.oneTimePreKeysPerTargetPerMinute',
      l.oneTimePreKeysPerTargetPerMinute,
      0,
    ),
    oneTimePreKeysPerRequesterPerMinute: count(
      'limits.oneTimePreKeysPerRequesterPerMinute',
      l.oneTimePreKeysPerRequesterPerMinute,
      0,
    ),
  });
}

function integer(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number') throw new TypeError(`${name} must be a number`);
  if (!Number.isInteger(v) || v < min || v > max)
    throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${v}`);
  return v;
}

function positive(name: string, v: unknown): number {
  if (typeof v !== 'number') throw new TypeError(`${name} must be a number`);
  if (Number.isNaN(v) || v <= 0) throw new RangeError(`${name} must be positive, got ${v}`);
  return v;
}

function fn<T>(name: string, v: unknown): T {
  if (typeof v !== 'function') throw new TypeError(`${name} must be a function`);
  return v as T;
}

/** Applies defaults and validates; throws TypeError for wrong types or unknown keys, RangeError for bad values. */
export function resolveOptions(options: RelayOptions = {}): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  for (const key of Object.keys(options)) if (!KNOWN.has(key)) throw new TypeError(`unknown option "${key}"`);
  const o = { ...DEFAULT_OPTIONS, ...stripUndefined(options) };

  if (typeof o.host !== 'string' || o.host === '') throw new TypeError('host must be a non-empty string');
  const rate = o.rateLimit as unknown;
  if (typeof rate !== 'object' || rate === null) throw new TypeError('rateLimit must be an object');
  for (const key of Object.keys(rate)) {
    if (!KNOWN_RATE.has(key)) throw new TypeError(`unknown option "rateLimit.${key}"`);
  }
  const rateLimit = { ...DEFAULT_OPTIONS.rateLimit, ...stripUndefined(rate as RateLimitOptions) };
  const framesPerSecond = positive('rateLimit.framesPerSecond', rateLimit.framesPerSecond);
  const burst = positive('rateLimit.burst', rateLimit.burst);
  if (burst < 1) throw new RangeError(`rateLimit.burst must be at least 1 frame, got ${burst}`);
  if (o.dataDir !== undefined && (typeof o.dataDir !== 'string' || o.dataDir === ''))
    throw new TypeError('dataDir must be a non-empty string (omit it for an in-memory relay)');
  for (const name of ['tlsCert', 'tlsKey'] as const) {
    const file = o[name] as unknown;
    if (file !== undefined && (typeof file !== 'string' || file === ''))
      throw new TypeError(`${name} must be the path of a PEM file`);
  }
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined))
    throw new TypeError(
      `${o.tlsCert === undefined ? 'tlsKey' : 'tlsCert'} needs ${o.tlsCert === undefined ? 'tlsCert' : 'tlsKey'}: TLS takes both a certificate and its key`,
    );
  if (o.metrics !== 'loopback' && o.metrics !== 'open' && o.metrics !== false)
    throw new TypeError(`metrics must be 'loopback', 'open' or false, not ${JSON.stringify(o.metrics)}`);
  if (typeof o.processMetrics !== 'boolean') throw new TypeError('processMetrics must be a boolean');

  return Object.freeze({
    host: o.host,
    port: integer('port', o.port, 0, 65535),
    dataDir: o.dataDir,
    heartbeatIntervalMs: integer('heartbeatIntervalMs', o.heartbeatIntervalMs, 10, MAX_TIMER_MS),
    storageProbeIntervalMs: integer('storageProbeIntervalMs', o.storageProbeIntervalMs, 10, MAX_TIMER_MS),
    // Below one maximal frame, a single forwarded message would already evict its recipient.
    maxBufferedBytes: integer(
      'maxBufferedBytes',
      o.maxBufferedBytes,
      MAX_FRAME_BYTES,
      Number.MAX_SAFE_INTEGER,
    ),
    rateLimit: Object.freeze({ framesPerSecond, burst }),
    handshakeTimeoutMs: integer('handshakeTimeoutMs', o.handshakeTimeoutMs, 1, MAX_TIMER_MS),
    limits: resolveLimits(o.limits),
    tlsCert: o.tlsCert,
    tlsKey: o.tlsKey,
    metrics: o.metrics,
    processMetrics: o.processMetrics,
    log: fn<RelayLog>('log', o.log),
    now: fn<() => number>('now', o.now),
    publicUrls: urls('publicUrls', o.publicUrls),
  });
}

function urls(name: string, v: unknown): readonly string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((u) => typeof u !== 'string'))
    throw new TypeError(`${name} must be an array of ws:// or wss:// URLs`);
  if (v.length === 0)
    throw new RangeError(`${name} must name at least one address (omit it for any address)`);
  return Object.freeze(
    v.map((u: string) => {
      try {
        return normaliseRelayUrl(u);
      } catch (e) {
        throw new RangeError(`${name}: ${(e as Error).message}`, { cause: e });
      }
    }),
  );
}

/** `{ port: undefined }` means "the default", as with ws. */
function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
