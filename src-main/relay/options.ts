/**
 * Relay options, resolved the way ws resolves its server options: defaults first, then the caller's,
 * every limit named here, and anything unknown, mistyped or contradictory rejected once at start.
 */
import { normaliseRelayUrl } from '../core/protocol/login.js';
import { MAX_FRAME_BYTES } from '../core/protocol/wire.js';

/** Per-connection token bucket on incoming frames. */
export interface RateLimitOptions {
  /** Sustained frames per second (default 300). `Infinity` disables rate limiting. */
  framesPerSecond?: number;
  /** Frames a connection may send at once before the sustained rate applies (default 600). */
  burst?: number;
}

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
  /** A live recipient whose unsent buffer grows beyond this is closed as a slow consumer (default 4 MiB). */
  maxBufferedBytes?: number;
  /** Incoming frame rate limit per connection. */
  rateLimit?: RateLimitOptions;
  /** A connection that has not authenticated within this is closed (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Receives one line per connection event; never message content (default: no-op). */
  log?: (line: string) => void;
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
  readonly maxBufferedBytes: number;
  readonly rateLimit: { readonly framesPerSecond: number; readonly burst: number };
  readonly handshakeTimeoutMs: number;
  readonly log: (line: string) => void;
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
  maxBufferedBytes: 4 * 1024 * 1024,
  rateLimit: Object.freeze({ framesPerSecond: 300, burst: 600 }),
  handshakeTimeoutMs: 10_000,
  log: () => {},
  now: Date.now,
  publicUrls: undefined,
});

/** Node timers overflow (and fire at once) above 2^31-1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const KNOWN = new Set<string>(Object.keys(DEFAULT_OPTIONS));
const KNOWN_RATE = new Set(['framesPerSecond', 'burst']);

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

  return Object.freeze({
    host: o.host,
    port: integer('port', o.port, 0, 65535),
    dataDir: o.dataDir,
    heartbeatIntervalMs: integer('heartbeatIntervalMs', o.heartbeatIntervalMs, 10, MAX_TIMER_MS),
    // Below one maximal frame, a single forwarded message would already evict its recipient.
    maxBufferedBytes: integer(
      'maxBufferedBytes',
      o.maxBufferedBytes,
      MAX_FRAME_BYTES,
      Number.MAX_SAFE_INTEGER,
    ),
    rateLimit: Object.freeze({ framesPerSecond, burst }),
    handshakeTimeoutMs: integer('handshakeTimeoutMs', o.handshakeTimeoutMs, 1, MAX_TIMER_MS),
    log: fn<(line: string) => void>('log', o.log),
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
