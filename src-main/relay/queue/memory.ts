/** The delivery queue of an in-memory relay: per-recipient arrays in seq order; nothing survives a restart. */
import {
  type DeliveryQueue,
  type OnAcknowledged,
  type QueueItem,
  type QueueStats,
  itemBytes,
} from './index.js';

/** Index of the first item with seq > `after` (items are sorted by seq). */
function firstAfter(items: readonly QueueItem[], after: number): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (items[mid]!.seq <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** DeliveryQueue in memory: every write is "durable" at once, callbacks still run asynchronously, in order. */
export class MemoryDeliveryQueue implements DeliveryQueue {
  readonly maxSeq = 0;
  private readonly byRecipient = new Map<string, QueueItem[]>();
  private closed = false;
  private items = 0;
  private bytes = 0;

  constructor(private readonly onAcknowledged: OnAcknowledged = () => {}) {}

  enqueue(item: QueueItem): void {
    this.assertOpen();
    this.items++;
    this.bytes += itemBytes(item);
    let items = this.byRecipient.get(item.recipient);
    if (!items) this.byRecipient.set(item.recipient, (items = []));
    items.push(item);
  }

  dequeue(recipient: string, seq: number): void {
    this.assertOpen();
    const items = this.byRecipient.get(recipient);
    if (!items) return;
    const i = firstAfter(items, seq - 1);
    const item = items[i];
    if (item?.seq !== seq) return;
    items.splice(i, 1);
    if (items.length === 0) this.byRecipient.delete(recipient);
    this.items--;
    this.bytes -= itemBytes(item);
    this.onAcknowledged(item.ts);
  }

  supersede(recipient: string, group: string): void {
    this.assertOpen();
    const items = this.byRecipient.get(recipient);
    if (!items) return;
    const kept: QueueItem[] = [];
    for (const item of items) {
      if (item.kind === 'event' && item.group === group) {
        this.items--;
        this.bytes -= itemBytes(item);
      } else kept.push(item);
    }
    if (kept.length === 0) this.byRecipient.delete(recipient);
    else this.byRecipient.set(recipient, kept);
  }

  deleteRecipient(recipient: string): void {
    this.assertOpen();
    for (const item of this.byRecipient.get(recipient) ?? []) {
      this.items--;
      this.bytes -= itemBytes(item);
    }
    this.byRecipient.delete(recipient);
  }

  usage(recipient: string): { items: number; bytes: number } {
    const items = this.byRecipient.get(recipient) ?? [];
    let bytes = 0;
    for (const item of items) bytes += itemBytes(item);
    return { items: items.length, bytes };
  }

  page(recipient: string, after: number, limit: number): Promise<QueueItem[]> {
    this.assertOpen();
    const items = this.byRecipient.get(recipient) ?? [];
    const from = firstAfter(items, after);
    return Promise.resolve(items.slice(from, from + limit));
  }

  stats(): QueueStats {
    return { items: this.items, bytes: this.bytes };
  }

  afterDurable(done: (err?: unknown) => void): void {
    this.assertOpen();
    queueMicrotask(() => done());
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the delivery queue is closed');
  }
}
