/**
 * Per-sender decryption work budget (docs/PROTOCOL.md "Bounded work", issue 9): a token bucket per
 * sender, in the work units of crypto/work.ts, so that a flood from one sender cannot take more than
 * a bounded share of the main process. Charged to the sender: all the work of a frame that failed
 * (forged, replayed, corrupt), and the skipped keys a genuine one set aside; genuine messages in order
 * cost the budget nothing, so no burst of them (an offline queue draining) is ever refused. A frame is
 * tried only within what its sender has left, and is refused (E2EE_RATE_LIMITED) without being tried
 * otherwise.
 *
 * Refusing is safe: the relay authenticates who a frame is from, so only the sender itself or the
 * relay can spend a sender's budget, and both can already keep that sender's messages from us.
 */
import { MAX_FRAME_WORK, WorkMeter } from '../crypto/work.js';

/** Work units a sender's budget regains per second (about 20 ms of CPU on the reference machine). */
export const SENDER_WORK_PER_SECOND = 10_000;
/** A full budget: two of the costliest frames, so that any genuine message fits after a pause. */
export const SENDER_WORK_BURST = 2 * MAX_FRAME_WORK;
/** Senders whose budget is tracked; beyond that the least recently charged is forgotten (full again). */
const SENDERS_TRACKED = 4096;

interface Bucket {
  tokens: number;
  at: number;
}

/** The budgets of every sender we receive from. */
export class WorkBudget {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly perSecond: number = SENDER_WORK_PER_SECOND,
    private readonly burst: number = SENDER_WORK_BURST,
  ) {
    if (!(perSecond > 0) || !(burst >= MAX_FRAME_WORK)) {
      throw new RangeError(`perSecond must be > 0 and burst >= MAX_FRAME_WORK (${MAX_FRAME_WORK})`);
    }
  }

  /** What `sender` has left at `now` (ms); a sender never charged, or long idle, has a full budget. */
  available(sender: string, now: number): number {
    const b = this.buckets.get(sender);
    if (!b) return this.burst;
    // A clock that goes back refills nothing.
    return Math.min(this.burst, b.tokens + (Math.max(0, now - b.at) * this.perSecond) / 1000);
  }

  /** The meter of one frame from `sender`: a frame's allowance, or what the sender has left if less. */
  meter(sender: string, now: number): WorkMeter {
    const left = Math.max(0, this.available(sender, now));
    return left < MAX_FRAME_WORK ? new WorkMeter(left, true) : new WorkMeter();
  }

  /**
   * Charges a frame from `sender` once it was handled: everything it cost if it failed (`ok` false),
   * only the skipped keys it set aside if it decrypted. May leave the budget below zero; it then
   * refills from there.
   */
  settle(sender: string, meter: WorkMeter, ok: boolean, now: number): void {
    const units = ok ? meter.charged : meter.spent;
    if (units === 0) return;
    const tokens = this.available(sender, now) - units;
    this.buckets.delete(sender); // re-inserted last: the map stays in order of last use
    this.buckets.set(sender, { tokens, at: now });
    // Forgetting the least recently charged senders gives them a full budget again.
    for (const id of this.buckets.keys()) {
      if (this.buckets.size <= SENDERS_TRACKED) break;
      this.buckets.delete(id);
    }
  }
}
