/**
 * The delivery queue: every routed item (message, receipt, group event) for one recipient, kept until
 * the recipient acknowledges it. Behind this interface so that backends can stand side by side: SQLite
 * in a worker thread (sqlite.ts, the relay with a data directory), memory (memory.ts, an in-memory
 * relay), and later a shared store for a multi-node relay. Every backend passes tests/relay/queue.test.ts.
 *
 * The contract:
 * - Operations take effect in call order: a `page` sees every `enqueue`/`dequeue` called before it.
 * - Writes are durable at a later commit; `afterDurable` runs its callback once every write called
 *   before it is durable (with the error if its commit failed), callbacks in registration order.
 * - Nothing blocks the event loop on the disk.
 * - `stats()` is cheap (kept up to date as items come and go, never a scan), and an item removed by
 *   `dequeue` (its recipient acknowledged it) is reported to the queue's `onAcknowledged` hook with its
 *   `ts` once the removal is durable: the relay's metrics (metrics.ts) read both.
 */

export type DeliverKind = 'direct' | 'group' | 'receipt' | 'event';

/** One routed item for one recipient; becomes a `deliver` frame. */
export interface QueueItem {
  readonly seq: number;
  readonly recipient: string;
  readonly kind: DeliverKind;
  readonly from?: string | undefined;
  readonly id?: string | undefined;
  readonly group?: string | undefined;
  /** Ciphertext exactly as the sender's base64 (the relay never decodes it). */
  readonly body?: string | undefined;
  /** A group event as its JSON text (RelayEvent). */
  readonly event?: string | undefined;
  readonly ts: number;
}

/** An item's weight in its recipient's mailbox quota: the bytes of its body and event. */
export const itemBytes = (item: Pick<QueueItem, 'body' | 'event'>): number =>
  (item.body?.length ?? 0) + (item.event?.length ?? 0);

/** What a queue holds, all recipients together, as of its last durable commit. */
export interface QueueStats {
  /** Items stored. */
  readonly items: number;
  /** Their payload: the characters of `body` and `event` (base64 and JSON: one byte each). */
  readonly bytes: number;
}

/** Runs once per item its recipient acknowledged (`dequeue`), with the item's `ts`, once that is durable. */
export type OnAcknowledged = (ts: number) => void;

/** Durable per-recipient queues of routed items. */
export interface DeliveryQueue {
  /** The highest seq stored when the queue was opened (0 if none). */
  readonly maxSeq: number;
  /** Stores an item (seqs increase across calls). */
  enqueue(item: QueueItem): void;
  /** Deletes one of `recipient`'s items; another recipient's seq or an unknown one changes nothing. */
  dequeue(recipient: string, seq: number): void;
  /**
   * Deletes `recipient`'s queued head notices of `group` (group events stored with their group): a newer
   * one is about to be enqueued, so a member who is away keeps one notice per group, not one per change.
   */
  supersede(recipient: string, group: string): void;
  /** Deletes every item of `recipient` (an account deleted). */
  deleteRecipient(recipient: string): void;
  /**
   * What waits in `recipient`'s mailbox: items, and bytes of bodies and events. Counts writes at once
   * and deletions once the backend has done them (after a failed commit, what the backend counted then).
   * For quotas: close to what is stored, erring on the side of more.
   */
  usage(recipient: string): { items: number; bytes: number };
  /**
   * Moves every item of `from` to `to` and names `to` as the sender of every item `from` sent (a user id
   * brought to its canonical form, issue 8); items keep their seqs, so `to`'s items stay in seq order.
   */
  renameUser(from: string, to: string): void;
  /** Up to `limit` of `recipient`'s items with seq > `after`, in seq order. */
  page(recipient: string, after: number, limit: number): Promise<QueueItem[]>;
  /** Items and payload bytes stored, as of the last durable commit; cheap (no scan). */
  stats(): QueueStats;
  /** Runs `done` once every write called so far is durable (or failed: `done(err)`). */
  afterDurable(done: (err?: unknown) => void): void;
  /**
   * A probe write (a row written, removed and made durable) after everything called before it, while
   * storage is unavailable (../storage.ts): rejects while the backend still cannot write. After a failed
   * write a backend may refuse every later one untried until a probe succeeds.
   */
  probe(): Promise<void>;
  /** Makes everything durable, runs every waiting callback, and releases the backend; idempotent. */
  close(): Promise<void>;
}
