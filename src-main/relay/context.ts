/** What the relay's parts share, and the error a request handler throws to refuse a request. */
import type { RelayErrorCode } from '../core/protocol/wire.js';
import type { Groups } from './groups.js';
import type { RelayLimits } from './limits.js';
import type { RelayLogger } from './log.js';
import type { RelayMetrics } from './metrics.js';
import type { ResolvedOptions } from './options.js';
import type { DeliveryQueue } from './queue/index.js';
import type { Router } from './router.js';
import type { RelayKey } from './relay-key.js';
import type { StorageState } from './storage.js';
import type { RelayStore } from './relay-store.js';

/** The state of one running relay, handed to every connection. */
export interface RelayContext {
  readonly options: ResolvedOptions;
  /** The relay's long-term key: signs every login challenge. */
  readonly relayKey: RelayKey;
  readonly store: RelayStore;
  readonly queue: DeliveryQueue;
  readonly router: Router;
  readonly groups: Groups;
  readonly limits: RelayLimits;
  /** Every registered user id (the identities stay in SQLite; this answers "exists?" per message). */
  readonly users: Set<string>;
  readonly log: RelayLogger;
  /** Whether the relay can write its storage now (storage.ts). */
  readonly storage: StorageState;
  /** Undefined when the `metrics` option is false. */
  readonly metrics: RelayMetrics | undefined;
}

/**
 * Runs `done` once every write made so far, in the store and in the delivery queue, is durable (with the
 * first error if a commit failed). Calls complete in the order they were made: each part runs its
 * callbacks in order, so the later of the two for an earlier call never comes after a later call's.
 */
export function afterDurable(ctx: RelayContext, done: (err?: unknown) => void): void {
  let pending = 2;
  let failure: unknown;
  const one = (err?: unknown): void => {
    failure ??= err;
    if (--pending === 0) done(failure);
  };
  ctx.store.afterCommit(one);
  ctx.queue.afterDurable(one);
}

/** The sentence of a STORAGE_UNAVAILABLE refusal (the client keeps the message and sends it again). */
export const STORAGE_UNAVAILABLE_MESSAGE =
  'The relay is out of storage; your message is kept and will be retried.';

/** A refused request: becomes an `error` frame with this code and message (a plain sentence). */
export class RelayError extends Error {
  constructor(
    readonly code: RelayErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'RelayError';
  }
}
