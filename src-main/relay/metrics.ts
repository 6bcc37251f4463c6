/**
 * The relay's Prometheus metrics (prom-client), served as text at `GET /metrics` (http.ts decides who
 * may read them). Each relay has a registry of its own, so several relays in one process (tests, the
 * app hosting one) never mix their figures.
 *
 * What is measured, and what never is: counts, sizes and durations; never content, and users and groups
 * only as counts (no label holds an id: a label's values are a fixed set, so no client can create
 * series). The hot path pays for what it must: routed items are plain counters read at scrape time,
 * gauges are computed at scrape time from what the relay keeps anyway, and only the two latency
 * histograms are updated per request and per delivery.
 *
 * To add a metric: a field here, updated through a method the relay calls or computed in `collect`,
 * and a row in docs/OPERATIONS.md (Metrics). A health check (health.ts) is reported by itself.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { RelayErrorCode } from '../core/protocol/wire.js';
import type { CheckState } from './health.js';
import type { DeliverKind, QueueStats } from './queue/index.js';

/** What the gauges read at scrape time. */
export interface MetricSources {
  /** Open WebSocket connections, and how many of them are authenticated. */
  connections(): { open: number; authenticated: number };
  /** Registered users. */
  users(): number;
  /** Groups. */
  groups(): number;
  /** What the delivery queue holds. */
  queue(): QueueStats;
  /** Every health check's state. */
  health(): { name: string; state: CheckState }[];
}

/** Why the relay itself closed connections: the close reasons it sends, plus heartbeat and shutdown drops. */
export const CLOSE_REASONS = [
  'unsupported version',
  'authentication failed',
  'handshake timeout',
  'not authenticated',
  'too many bad frames',
  'slow consumer',
  'replaced',
  'account deleted',
  'internal error',
  'storage unavailable',
  'storage available again',
  'relay shutting down',
  'missed heartbeat',
  'other',
] as const;
export type CloseReason = (typeof CLOSE_REASONS)[number];

const KINDS: readonly DeliverKind[] = ['direct', 'group', 'receipt', 'event'];
const CODES = Object.values(RelayErrorCode) as readonly string[];

/** The request frames whose latency is measured (every request a client can send). */
const REQUEST_TYPES = [
  'send',
  'groupSend',
  'publishPreKeys',
  'getBundle',
  'identities',
  'groupAppend',
  'groupLog',
  'deleteAccount',
] as const;

/**
 * Request latency buckets (seconds): a request waits for the group commit and its fsync, normally a
 * few milliseconds; tens of milliseconds mean a slow disk, seconds a stalled one.
 */
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];
/**
 * Delivery latency buckets (seconds): from milliseconds (recipient online) to a week (offline for
 * days); the relay keeps an item until it is acknowledged, however long that takes.
 */
const DELIVERY_BUCKETS = [0.005, 0.025, 0.1, 0.5, 2, 10, 60, 600, 3600, 21_600, 86_400, 604_800];

/** prom-client's process metrics, collected once per process into a registry of their own. */
let processRegistry: Registry | undefined;

/** The metrics of one relay. */
export class RelayMetrics {
  readonly registry = new Registry();
  private readonly routedCount: Record<DeliverKind, number> = { direct: 0, group: 0, receipt: 0, event: 0 };
  private readonly connectionsOpened: Counter;
  private readonly closedByRelay: Counter<'reason'>;
  private readonly refusals: Counter<'code'>;
  private readonly requestSeconds: Histogram<'type'>;
  private readonly deliverySeconds: Histogram;
  private readonly tlsFailures: Counter;
  private readonly storageErrors: Counter;
  private readonly storageOutages: Counter;
  private readonly storageAvailable: Gauge;
  private readonly withProcess: Registry | undefined;
  /** Set by `readFrom` once the relay's parts exist; the gauges report nothing before. */
  private sources: MetricSources | undefined;

  constructor(
    private readonly now: () => number,
    withProcess: boolean,
  ) {
    const registers = [this.registry];
    const read = <T>(f: (s: MetricSources) => T): T | undefined => this.sources && f(this.sources);
    const prefix = 'sealed_relay_';
    new Gauge({
      name: `${prefix}connections`,
      help: 'Open WebSocket connections: in the handshake, or authenticated (one per user online).',
      labelNames: ['state'],
      registers,
      collect() {
        const { open, authenticated } = read((s) => s.connections()) ?? { open: 0, authenticated: 0 };
        this.set({ state: 'handshake' }, open - authenticated);
        this.set({ state: 'authenticated' }, authenticated);
      },
    });
    this.connectionsOpened = new Counter({
      name: `${prefix}connections_opened_total`,
      help: 'WebSocket connections accepted since start.',
      registers,
    });
    this.closedByRelay = new Counter({
      name: `${prefix}connections_closed_by_relay_total`,
      help: 'Connections the relay closed or dropped, by reason.',
      labelNames: ['reason'],
      registers,
    });
    new Gauge({
      name: `${prefix}users`,
      help: 'Registered users.',
      registers,
      collect() {
        this.set(read((s) => s.users()) ?? 0);
      },
    });
    new Gauge({
      name: `${prefix}groups`,
      help: 'Groups.',
      registers,
      collect() {
        this.set(read((s) => s.groups()) ?? 0);
      },
    });
    new Gauge({
      name: `${prefix}queue_items`,
      help: 'Items (messages, receipts, group events) stored for recipients who have not acknowledged them.',
      registers,
      collect() {
        this.set(read((s) => s.queue().items) ?? 0);
      },
    });
    new Gauge({
      name: `${prefix}queue_bytes`,
      help: 'Payload of the queued items (ciphertext as base64, events as JSON), in bytes; the database files are larger.',
      registers,
      collect() {
        this.set(read((s) => s.queue().bytes) ?? 0);
      },
    });
    const routed = this.routedCount;
    new Counter({
      name: `${prefix}routed_total`,
      help: 'Items accepted for delivery, one per recipient, by kind.',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        for (const kind of KINDS) this.inc({ kind }, routed[kind]);
      },
    });
    this.deliverySeconds = new Histogram({
      name: `${prefix}delivery_seconds`,
      help: 'From an item accepted to its recipient acknowledging it (seconds); the count is the items delivered.',
      buckets: DELIVERY_BUCKETS,
      registers,
    });
    this.refusals = new Counter({
      name: `${prefix}refusals_total`,
      help: 'Requests and frames refused with an error frame, by error code.',
      labelNames: ['code'],
      registers,
    });
    this.requestSeconds = new Histogram({
      name: `${prefix}request_seconds`,
      help: 'From a request frame read to its reply sent, the commit it waits for included (seconds), by frame type.',
      labelNames: ['type'],
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.tlsFailures = new Counter({
      name: `${prefix}tls_handshake_failures_total`,
      help: 'TLS handshakes that failed (a client that does not trust the certificate, a scanner, a plain-text client).',
      registers,
    });
    this.storageErrors = new Counter({
      name: `${prefix}storage_errors_total`,
      help: 'Failed database commits, syncs and queue operations.',
      registers,
    });
    this.storageOutages = new Counter({
      name: `${prefix}storage_failures_total`,
      help: 'Times the relay entered the storage-unavailable state (a full disk, a read-only directory, I/O errors): writes refused until a probe write succeeds.',
      registers,
    });
    this.storageAvailable = new Gauge({
      name: `${prefix}storage_available`,
      help: '1 while the relay can write its databases, 0 in the storage-unavailable state (GET /healthz says why).',
      registers,
    });
    this.storageAvailable.set(1);
    new Gauge({
      name: `${prefix}health`,
      help: 'Each health check: 1 while it passes, 0 while it fails (GET /healthz says why).',
      labelNames: ['check'],
      registers,
      collect() {
        this.reset();
        for (const { name, state } of read((s) => s.health()) ?? [])
          this.set({ check: name }, state.ok ? 1 : 0);
      },
    });
    // Every label value is known up front: the series exist (at 0) from the first scrape.
    for (const code of CODES) this.refusals.inc({ code }, 0);
    for (const reason of CLOSE_REASONS) this.closedByRelay.inc({ reason }, 0);
    for (const type of REQUEST_TYPES) this.requestSeconds.zero({ type });
    if (withProcess) {
      if (!processRegistry) {
        processRegistry = new Registry();
        collectDefaultMetrics({ register: processRegistry });
      }
      this.withProcess = processRegistry;
    }
  }

  /** Where the gauges read their figures from, once the relay's parts exist. */
  readFrom(sources: MetricSources): void {
    this.sources = sources;
  }

  /** The text exposition format and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    const registry = this.withProcess ? Registry.merge([this.withProcess, this.registry]) : this.registry;
    return { contentType: this.registry.contentType, body: await registry.metrics() };
  }

  connectionOpened(): void {
    this.connectionsOpened.inc();
  }

  /** The relay closed or dropped a connection; `reason` is its close reason. */
  closed(reason: string): void {
    const known = (CLOSE_REASONS as readonly string[]).includes(reason) ? reason : 'other';
    this.closedByRelay.inc({ reason: known });
  }

  /** An error frame went out. */
  refused(code: string): void {
    this.refusals.inc({ code: CODES.includes(code) ? code : 'other' });
  }

  /** A reply to a `type` request went out; `startedMs` is `performance.now()` when its frame was read. */
  request(type: string, startedMs: number): void {
    if (!(REQUEST_TYPES as readonly string[]).includes(type)) return;
    this.requestSeconds.observe({ type }, (performance.now() - startedMs) / 1000);
  }

  /** An item was routed to one recipient. */
  routed(kind: DeliverKind): void {
    this.routedCount[kind]++;
  }

  /** A recipient acknowledged an item routed at `ts` (the relay's clock, ms), and its removal is durable. */
  acknowledged(ts: number): void {
    this.deliverySeconds.observe(Math.max(0, this.now() - ts) / 1000);
  }

  tlsFailure(): void {
    this.tlsFailures.inc();
  }

  storageError(): void {
    this.storageErrors.inc();
  }

  /** The relay entered (`true`) or left (`false`) the storage-unavailable state. */
  storageUnavailable(unavailable: boolean): void {
    if (unavailable) this.storageOutages.inc();
    this.storageAvailable.set(unavailable ? 0 : 1);
  }
}
