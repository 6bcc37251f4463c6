/** The delivery queue of an in-memory relay: per-recipient arrays in seq order; nothing survives a restart. */
import type { DeliveryQueue, QueueItem } from './index.js';

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

  enqueue(item: QueueItem): void {
    this.assertOpen();
    let items = this.byRecipient.get(item.recipient);
    if (!items) this.byRecipient.set(item.recipient, (items = []));
    items.push(item);
  }

  dequeue(recipient: string, seq: number): void {
    this.assertOpen();
    const items = this.byRecipient.get(recipient);
    if (!items) return;
    const i = firstAfter(items, seq - 1);
    if (items[i]?.seq !== seq) return;
    items.splice(i, 1);
    if (items.length === 0) this.byRecipient.delete(recipient);
  }

  deleteRecipient(recipient: string): void {
    this.assertOpen();
    this.byRecipient.delete(recipient);
  }

  renameUser(from: string, to: string): void {
    this.assertOpen();
    const moved = this.byRecipient.get(from) ?? [];
    this.byRecipient.delete(from);
    const merged = [...(this.byRecipient.get(to) ?? []), ...moved].map((item) => ({
      ...item,
      recipient: to,
    }));
    if (merged.length > 0)
      this.byRecipient.set(
        to,
        merged.sort((a, b) => a.seq - b.seq),
      );
    for (const [recipient, items] of this.byRecipient)
      this.byRecipient.set(
        recipient,
        items.map((item) => (item.from === from ? { ...item, from: to } : item)),
      );
  }

  page(recipient: string, after: number, limit: number): Promise<QueueItem[]> {
    this.assertOpen();
    const items = this.byRecipient.get(recipient) ?? [];
    const from = firstAfter(items, after);
    return Promise.resolve(items.slice(from, from + limit));
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
