/**
 * Per-key budgets for what one user, or one network address, may make the relay do in a minute (issue
 * 9: abuse resistance). Each is a token bucket: `limit` tokens, refilled evenly over `windowMs`, so a
 * burst up to the limit passes and a sustained rate above limit/window is held back. Buckets that are
 * full again are forgotten, so memory follows the keys active in the last window.
 */
import type { LimitOptions } from './options.js';
import type { DeliveryQueue } from './queue/index.js';

/** Token buckets by key (user id or IP address). */
export class Budget {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private sweptAt = 0;

  constructor(
    /** Tokens per window (and the burst); Infinity turns the budget off. */
    readonly limit: number,
    readonly windowMs: number,
    private readonly now: () => number,
  ) {}

  /**
   * Takes `cost` tokens if there are that many, or a full bucket's worth for a request dearer than the
   * whole limit (so that one can pass at all). Its whole cost is charged either way: beyond what the
   * bucket held it is debt, and the next request waits until it is paid, so the rate over time stays
   * the limit (before, one request above the limit cost only the limit).
   */
  take(key: string, cost = 1): boolean {
    if (this.limit === Infinity) return true;
    if (this.limit <= 0) return false; // a budget of 0 allows nothing (not: costs nothing)
    const b = this.refill(key);
    if (b.tokens < Math.min(cost, this.limit)) return false;
    b.tokens -= cost;
    return true;
  }

  /** Milliseconds until `key` has `cost` tokens again (0 if it has them now). */
  waitMs(key: string, cost = 1): number {
    if (this.limit === Infinity) return 0;
    if (this.limit <= 0) return this.windowMs; // never, in effect: a budget of 0 allows nothing
    const b = this.refill(key);
    const missing = Math.min(cost, this.limit) - b.tokens;
    return missing <= 0 ? 0 : Math.ceil((missing / this.limit) * this.windowMs);
  }

  private refill(key: string): { tokens: number; at: number } {
    const now = this.now();
    this.sweep(now);
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: this.limit, at: now };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.limit, b.tokens + ((now - b.at) / this.windowMs) * this.limit);
    b.at = now;
    return b;
  }

  /** Once a window: forgets buckets that have refilled completely. */
  private sweep(now: number): void {
    if (now - this.sweptAt < this.windowMs) return;
    this.sweptAt = now;
    for (const [key, b] of this.buckets)
      if (b.tokens + ((now - b.at) / this.windowMs) * this.limit >= this.limit) this.buckets.delete(key);
  }
}

/** Thrown by a request handler when the sender must wait: the frame is processed again after `delayMs`. */
export class Throttle extends Error {
  constructor(readonly delayMs: number) {
    super(`throttled for ${delayMs} ms`);
    this.name = 'Throttle';
  }
}

/** True for loopback addresses (IPv4, IPv6 and IPv4-mapped). */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

/** The budgets of one relay, built from its options. */
export interface RelayLimits {
  readonly options: Readonly<Required<LimitOptions>>;
  /** New connections per address. */
  readonly connections: Budget;
  /** New accounts per address. */
  readonly registrations: Budget;
  /** Bundle requests per requester. */
  readonly bundles: Budget;
  /** One-time prekeys handed out per owner, and per requester. */
  readonly preKeysOfTarget: Budget;
  readonly preKeysForRequester: Budget;
  /** Bytes of group fan-out per sender. */
  readonly fanout: Budget;
  /** True when the per-address limits do not apply to `address` (loopback, unless limitLoopback). */
  exempt(address: string | undefined): boolean;
}

const MINUTE = 60_000;

/** The budgets for `options` (per minute each). */
export function createLimits(options: Readonly<Required<LimitOptions>>, now: () => number): RelayLimits {
  return {
    options,
    connections: new Budget(options.connectionsPerIpPerMinute, MINUTE, now),
    registrations: new Budget(options.registrationsPerIpPerMinute, MINUTE, now),
    bundles: new Budget(options.bundleRequestsPerMinute, MINUTE, now),
    preKeysOfTarget: new Budget(options.oneTimePreKeysPerTargetPerMinute, MINUTE, now),
    preKeysForRequester: new Budget(options.oneTimePreKeysPerRequesterPerMinute, MINUTE, now),
    fanout: new Budget(options.groupFanoutBytesPerMinute, MINUTE, now),
    exempt: (address) => !options.limitLoopback && isLoopback(address),
  };
}

/** True when one more item of `bytes` fits `recipient`'s mailbox quota (items and bytes waiting). */
export function mailboxHasRoom(
  queue: Pick<DeliveryQueue, 'usage'>,
  limits: Pick<Required<LimitOptions>, 'queuedItemsPerRecipient' | 'queuedBytesPerRecipient'>,
  recipient: string,
  bytes: number,
): boolean {
  const { items, bytes: waiting } = queue.usage(recipient);
  return items < limits.queuedItemsPerRecipient && waiting + bytes <= limits.queuedBytesPerRecipient;
}
