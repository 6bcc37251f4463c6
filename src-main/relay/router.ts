/**
 * Delivery: every routed item reaches its recipient as a `deliver` frame, in the order it reached
 * the relay, and leaves the relay only when the recipient answers `received {seq}`.
 *
 * A recipient is either offline, "draining" (just authenticated; its queue is replayed page by page
 * and anything new is queued behind it so order holds) or "live" (items are forwarded at once and kept
 * in memory until acknowledged). Un-acknowledged live items go to the durable queue when the
 * recipient disconnects, is too slow, or does not acknowledge in time; the recipient gets them again
 * on its next connection and drops duplicates by message id.
 */
import type { QueueItem, Store } from './store.js';

/** A forwarded item waiting for `received`. */
export interface InFlight {
  readonly item: QueueItem;
  readonly sentAt: number;
}

/** An authenticated connection, as the router sees it. */
export interface Peer {
  readonly userId: string;
  mode: 'draining' | 'live';
  readonly closed: boolean;
  /** Forwarded, unacknowledged items by seq, oldest first. */
  readonly inflight: Map<number, InFlight>;
  /** Sends a frame; `done` runs once it is handed to the OS (or the socket failed). */
  send(frame: string, done?: (err?: Error) => void): void;
  /** Writes out frames held back to be coalesced. */
  flush(): void;
  /** Bytes accepted by `send` and not yet handed to the OS. */
  bufferedAmount(): number;
  close(code: number, reason: string): void;
}

/** The fields a sender determines; the router adds seq, recipient and ts. */
export type Routed = Omit<QueueItem, 'seq' | 'recipient' | 'ts'>;

/** Queue rows read per drain step. */
const DRAIN_PAGE = 256;
/**
 * At most this many live items wait for `received` per connection; beyond it the oldest is moved to
 * the durable queue so a client that never acknowledges cannot grow the relay's memory.
 */
const MAX_IN_FLIGHT = 4096;

/**
 * The `deliver` frame for an item, serialised by hand: every field was validated on the way in (ids
 * by the Name/MessageId patterns, bodies as base64), none needs escaping, and skipping
 * JSON.stringify's scan of the body is most of the cost of forwarding.
 */
export function deliverFrame(item: QueueItem): string {
  let out = `{"t":"deliver","seq":${item.seq},"kind":"${item.kind}"`;
  if (item.from !== undefined) out += `,"from":"${item.from}"`;
  if (item.id !== undefined) out += `,"id":"${item.id}"`;
  if (item.group !== undefined) out += `,"group":"${item.group}"`;
  if (item.body !== undefined) out += `,"body":"${item.body}"`;
  if (item.event !== undefined) out += `,"event":${JSON.stringify(item.event)}`;
  return `${out},"ts":${item.ts}}`;
}

export interface RouterOptions {
  readonly maxBufferedBytes: number;
  readonly liveAckTimeoutMs: number;
  readonly now: () => number;
  readonly log: (line: string) => void;
}

/** Routes items to online peers or the queue; owns the online map. */
export class Router {
  private readonly online = new Map<string, Peer>();

  constructor(
    private readonly store: Store,
    private readonly opts: RouterOptions,
  ) {}

  /** The authenticated connection of a user, if any. */
  peer(userId: string): Peer | undefined {
    return this.online.get(userId);
  }

  /** Routes one item: forwarded now to a live recipient, else queued (durable at the next commit). */
  route(recipient: string, routed: Routed, ts: number): void {
    const item: QueueItem = { ...routed, seq: this.store.nextSeq(), recipient, ts };
    const peer = this.online.get(recipient);
    if (peer?.mode === 'live') this.forward(peer, item);
    else this.store.enqueue(item);
  }

  private forward(peer: Peer, item: QueueItem): void {
    peer.inflight.set(item.seq, { item, sentAt: this.opts.now() });
    peer.send(deliverFrame(item));
    if (peer.bufferedAmount() > this.opts.maxBufferedBytes) peer.flush(); // held back is not slow
    if (peer.bufferedAmount() > this.opts.maxBufferedBytes) {
      this.opts.log(`slow consumer ${peer.userId}: closing`);
      peer.close(1008, 'slow consumer'); // detaches, which queues everything in flight
    } else if (peer.inflight.size > MAX_IN_FLIGHT) {
      const [seq, oldest] = peer.inflight.entries().next().value!;
      peer.inflight.delete(seq);
      this.store.enqueue(oldest.item);
    }
  }

  /**
   * Makes `peer` its user's connection, in draining mode; a previous connection of the same user is
   * closed (its in-flight items are queued first, so the new drain sees them).
   */
  attach(peer: Peer): void {
    const old = this.online.get(peer.userId);
    if (old && old !== peer) old.close(1000, 'replaced');
    this.online.set(peer.userId, peer);
    peer.mode = 'draining';
  }

  /** Replays the peer's queue in seq order, then makes it live. */
  startDrain(peer: Peer): void {
    this.drain(peer).catch((err: unknown) => {
      this.opts.log(`drain failed for ${peer.userId}: ${String(err)}`);
      if (!peer.closed) peer.close(1011, 'internal error');
    });
  }

  private async drain(peer: Peer): Promise<void> {
    const highWater = this.opts.maxBufferedBytes / 2;
    let cursor = 0;
    while (!peer.closed) {
      const rows = this.store.page(peer.userId, cursor, DRAIN_PAGE);
      if (rows.length === 0) {
        // Synchronous with the empty read: nothing can be queued for this user in between.
        peer.mode = 'live';
        return;
      }
      let written: Promise<unknown> = Promise.resolve();
      for (const item of rows) {
        cursor = item.seq;
        written = new Promise((resolve) => peer.send(deliverFrame(item), resolve));
        if (peer.bufferedAmount() > highWater) break;
      }
      // Backpressure and a yield in one: the next page waits until this one reached the socket.
      await written;
    }
  }

  /** Removes `peer` from the online map; its in-flight items are queued unless `persist` is false. */
  detach(peer: Peer, persist = true): void {
    if (this.online.get(peer.userId) === peer) this.online.delete(peer.userId);
    if (persist) for (const f of peer.inflight.values()) this.store.enqueue(f.item);
    peer.inflight.clear();
  }

  /** `received {seq}` from a peer: forgets the in-flight item or deletes the peer's own queue row. */
  received(peer: Peer, seq: number): void {
    if (!peer.inflight.delete(seq)) this.store.dequeue(peer.userId, seq);
  }

  /** Queues live items not acknowledged within liveAckTimeoutMs. Called periodically. */
  sweep(): void {
    const deadline = this.opts.now() - this.opts.liveAckTimeoutMs;
    for (const peer of this.online.values()) {
      for (const [seq, f] of peer.inflight) {
        if (f.sentAt > deadline) break; // oldest first
        peer.inflight.delete(seq);
        this.store.enqueue(f.item);
      }
    }
  }

  /** Sends a live (not queued) frame to every authenticated connection except `except`. */
  broadcast(frame: string, except?: Peer): void {
    for (const peer of this.online.values()) if (peer !== except) peer.send(frame);
  }
}
