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

/** One recipient's mailbox: its items in seq order and their bytes (kept, so quotas cost no scan). */
interface Mailbox {
  items: QueueItem[];
  bytes: number;
}

/** DeliveryQueue in memory: every write is "durable" at once, callbacks still run asynchronously, in order. */
export class MemoryDeliveryQueue implements DeliveryQueue {
  readonly maxSeq = 0;
  private readonly byRecipient = new Map<string, Mailbox>();
  private closed = false;
  private items = 0;
  private bytes = 0;

  constructor(private readonly onAcknowledged: OnAcknowledged = () => {}) {}

  enqueue(item: QueueItem): void {
    this.assertOpen();
    let box = this.byRecipient.get(item.recipient);
    if (!box) this.byRecipient.set(item.recipient, (box = { items: [], bytes: 0 }));
    box.items.push(item);
    this.added(box, item);
  }

  dequeue(recipient: string, seq: number): void {
    this.assertOpen();
    const box = this.byRecipient.get(recipient);
    if (!box) return;
    const i = firstAfter(box.items, seq - 1);
    const item = box.items[i];
    if (item?.seq !== seq) return;
    box.items.splice(i, 1);
    this.removed(recipient, box, item);
    this.onAcknowledged(item.ts);
  }

  supersede(recipient: string, group: string): void {
    this.assertOpen();
    const box = this.byRecipient.get(recipient);
    if (!box) return;
    const gone = box.items.filter((i) => i.kind === 'event' && i.group === group);
    if (gone.length === 0) return;
    box.items = box.items.filter((i) => !(i.kind === 'event' && i.group === group));
    for (const item of gone) this.removed(recipient, box, item);
  }

  deleteRecipient(recipient: string): void {
    this.assertOpen();
    const box = this.byRecipient.get(recipient);
    if (!box) return;
    this.items -= box.items.length;
    this.bytes -= box.bytes;
    this.byRecipient.delete(recipient);
  }

  renameUser(from: string, to: string): void {
    this.assertOpen();
    const moved = this.byRecipient.get(from);
    this.byRecipient.delete(from);
    if (moved) {
      const box = this.byRecipient.get(to) ?? { items: [], bytes: 0 };
      box.items = [...box.items, ...moved.items.map((item) => ({ ...item, recipient: to }))].sort(
        (a, b) => a.seq - b.seq,
      );
      box.bytes += moved.bytes;
      this.byRecipient.set(to, box);
    }
    for (const box of this.byRecipient.values())
      box.items = box.items.map((item) => (item.from === from ? { ...item, from: to } : item));
  }

  usage(recipient: string): { items: number; bytes: number } {
    const box = this.byRecipient.get(recipient);
    return { items: box?.items.length ?? 0, bytes: box?.bytes ?? 0 };
  }

  page(recipient: string, after: number, limit: number): Promise<QueueItem[]> {
    this.assertOpen();
    const items = this.byRecipient.get(recipient)?.items ?? [];
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

  /** Memory cannot fill a disk: nothing to probe. */
  probe(): Promise<void> {
    return Promise.resolve();
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private added(box: Mailbox, item: QueueItem): void {
    const bytes = itemBytes(item);
    box.bytes += bytes;
    this.items++;
    this.bytes += bytes;
  }

  private removed(recipient: string, box: Mailbox, item: QueueItem): void {
    const bytes = itemBytes(item);
    box.bytes -= bytes;
    this.items--;
    this.bytes -= bytes;
    if (box.items.length === 0) this.byRecipient.delete(recipient);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the delivery queue is closed');
  }
}
