/**
 * Delivery: every routed item reaches its recipient as a `deliver` frame, in the order it reached
 * the relay, and leaves the relay only when the recipient answers `received {seq}`.
 *
 * Every item is written to the durable queue, in the same group commit whether its recipient is online
 * or not, and the sender's ack waits for that commit: 'sent' always means stored (issue 13: an item
 * that lived only in memory was lost when the relay crashed before the recipient's `received`). A
 * recipient is either offline, "draining" (just authenticated; its queue is replayed page by page and
 * anything new is queued behind it so order holds) or "live" (items are also forwarded at once, before
 * their commit, which costs nothing in safety: the sender learns 'sent' only after it). An item the
 * recipient has not acknowledged stays queued and comes again on its next connection; recipients drop
 * duplicates by message id.
 */
import { failpoint } from './failpoints.js';
import { errorText, type RelayLogger } from './log.js';
import type { RelayMetrics } from './metrics.js';
import type { DeliveryQueue, QueueItem } from './queue/index.js';
import type { RelayStore } from './relay-store.js';

/** An authenticated connection, as the router sees it. */
export interface Peer {
  readonly userId: string;
  /** The connection's label in the log (`#12`). */
  readonly label: string;
  mode: 'draining' | 'live';
  readonly closed: boolean;
  /** Sends a frame; `done` runs once it is handed to the OS (or the socket failed). */
  send(frame: string, done?: (err?: Error) => void): void;
  /** Writes out frames held back to be coalesced. */
  flush(): void;
  /** Bytes accepted by `send` and not yet handed to the OS. */
  bufferedAmount(): number;
  close(code: number, reason: string): void;
}

/**
 * Closes `peer` as a slow consumer when more than `maxBufferedBytes` wait unsent on its socket after
 * what was just sent to it (a delivery, a reply), after writing out what was only held back to be
 * coalesced. What it did not acknowledge stays queued for its next connection.
 */
export function closeIfSlow(peer: Peer, maxBufferedBytes: number, log: RelayLogger): void {
  if (peer.bufferedAmount() > maxBufferedBytes) peer.flush(); // held back is not slow
  if (peer.bufferedAmount() > maxBufferedBytes && !peer.closed) {
    log.warn('slow_consumer', `slow consumer ${peer.label}: closing`, { conn: peer.label });
    peer.close(1008, 'slow consumer');
  }
}

/** The fields a sender determines; the router adds seq, recipient and ts. */
export type Routed = Omit<QueueItem, 'seq' | 'recipient' | 'ts'>;

/** Queue rows read per drain step. */
const DRAIN_PAGE = 256;

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
  if (item.event !== undefined) out += `,"event":${item.event}`; // JSON of a validated RelayEvent
  return `${out},"ts":${item.ts}}`;
}

export interface RouterOptions {
  readonly maxBufferedBytes: number;
}

/** Routes items to online peers or the queue; owns the online map. */
export class Router {
  private readonly online = new Map<string, Peer>();
  /**
   * Per draining peer, the items routed to it since its last page read was asked for: that read cannot
   * see them (the queue answers in call order), so when it comes back empty they are sent from here.
   */
  private readonly late = new Map<Peer, QueueItem[]>();

  constructor(
    private readonly store: RelayStore,
    private readonly queue: DeliveryQueue,
    private readonly opts: RouterOptions,
    private readonly log: RelayLogger,
    private readonly metrics: RelayMetrics | undefined,
  ) {}

  /** Authenticated connections: users online. */
  get onlineCount(): number {
    return this.online.size;
  }

  /** The authenticated connection of a user, if any. */
  peer(userId: string): Peer | undefined {
    return this.online.get(userId);
  }

  /**
   * Routes one item: queued (durable at the next commit, which every reply waits for) and, to a live
   * recipient, forwarded at once.
   */
  route(recipient: string, routed: Routed, ts: number): void {
    const item: QueueItem = {
      seq: this.store.nextSeq(),
      recipient,
      kind: routed.kind,
      from: routed.from,
      id: routed.id,
      group: routed.group,
      body: routed.body,
      event: routed.event,
      ts,
    };
    this.queue.enqueue(item);
    this.metrics?.routed(item.kind);
    const peer = this.online.get(recipient);
    if (!peer) return;
    failpoint('route.before-forward');
    if (peer.mode === 'live') this.forward(peer, item);
    else this.late.get(peer)?.push(item);
  }

  /**
   * Routes a group's head notice: the recipient's older notices of that group still queued are deleted
   * first, so someone away for long keeps one per group, however many changes happened.
   */
  routeHead(recipient: string, group: string, event: string, ts: number): void {
    this.queue.supersede(recipient, group);
    this.route(recipient, { kind: 'event', group, event }, ts);
  }

  private forward(peer: Peer, item: QueueItem): void {
    peer.send(deliverFrame(item));
    closeIfSlow(peer, this.opts.maxBufferedBytes, this.log);
  }

  /**
   * Makes `peer` its user's connection, in draining mode; a previous connection of the same user is
   * closed (what it did not acknowledge is still queued, so the new drain sends it again).
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
      this.log.error('drain_failed', `drain failed for ${peer.label}: ${String(err)}`, {
        conn: peer.label,
        error: errorText(err),
      });
      if (!peer.closed) peer.close(1011, 'internal error');
    });
  }

  private async drain(peer: Peer): Promise<void> {
    const highWater = this.opts.maxBufferedBytes / 2;
    let cursor = 0;
    while (!peer.closed) {
      this.late.set(peer, []);
      const rows = await this.queue.page(peer.userId, cursor, DRAIN_PAGE);
      if (peer.closed) return;
      if (rows.length === 0) {
        // The read saw everything routed before it was asked for; what came after is in `late`.
        const late = this.late.get(peer)!;
        this.late.delete(peer);
        peer.mode = 'live';
        for (const item of late) this.forward(peer, item);
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

  /** Removes `peer` from the online map (its unacknowledged items stay queued). */
  detach(peer: Peer): void {
    if (this.online.get(peer.userId) === peer) this.online.delete(peer.userId);
    this.late.delete(peer);
  }

  /** `received {seq}` from a peer: deletes the peer's own queue row (unknown seqs change nothing). */
  received(peer: Peer, seq: number): void {
    this.queue.dequeue(peer.userId, seq);
  }

  /** Sends a live (not queued) frame to every authenticated connection except `except`. */
  broadcast(frame: string, except?: Peer): void {
    for (const peer of this.online.values()) if (peer !== except) peer.send(frame);
  }
}
