/**
 * The delivery queue in SQLite, written by a worker thread (sqlite-worker.ts) so that neither the
 * inserts and deletes nor the fsync of every commit run on the relay's event loop. Operations are
 * collected during an event-loop turn and posted as one numbered batch; the worker answers, in order,
 * which batches are durable and the pages that were asked for. `afterDurable` callbacks wait for the
 * batch holding every write before them.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  type DeliveryQueue,
  type OnAcknowledged,
  type QueueItem,
  type QueueStats,
  itemBytes,
} from './index.js';
import type { BatchMessage, QueueOp, QueueRow, StatsTuple, WorkerMessage } from './sqlite-protocol.js';
import { RELAY_KEY_FILE } from '../relay-key.js';
import { checkDatabaseFiles, databaseStartError, integrityStartError } from '../storage.js';

interface Waiting {
  readonly done: (err?: unknown) => void;
  readonly batch: number;
}

interface PageRequest {
  readonly batch: number;
  resolve(rows: QueueItem[]): void;
  reject(err: Error): void;
}

/** The worker script: beside this file in the sources (tsx), beside the main bundle once built. */
function workerUrl(): URL {
  const candidates = [
    new URL('./sqlite-worker.ts', import.meta.url),
    new URL('./relay-queue-worker.js', import.meta.url),
    new URL('../relay-queue-worker.js', import.meta.url),
  ];
  const found = candidates.find((u) => existsSync(fileURLToPath(u)));
  if (!found) throw new Error('the relay queue worker script is missing from this build');
  return found;
}

/**
 * Starts the worker. From the sources (tests, `npm run relay`) it is TypeScript run by tsx, whose loader
 * hooks Node 20 does not pass on to worker threads: such a worker registers tsx itself first. The
 * built app's worker is plain JavaScript (electron.vite.config.ts builds it beside the main bundle).
 */
function startWorker(file: string): Worker {
  const url = workerUrl();
  if (!url.pathname.endsWith('.ts')) return new Worker(url, { workerData: { file } });
  const bootstrap = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(bootstrap, { eval: true, workerData: { file } });
}

function toItem(r: QueueRow): QueueItem {
  return {
    seq: r.seq,
    recipient: r.recipient,
    kind: r.kind as QueueItem['kind'],
    from: r.sender ?? undefined,
    id: r.msg_id ?? undefined,
    group: r.grp ?? undefined,
    body: r.body ?? undefined,
    event: r.event ?? undefined,
    ts: r.ts,
  };
}

/** A storage failure reported by the worker, with SQLite's error code when there is one. */
export class QueueStorageError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'QueueStorageError';
  }
}

/** DeliveryQueue in `<file>` (SQLite, WAL, synchronous=FULL), written by a worker thread. */
export class SqliteDeliveryQueue implements DeliveryQueue {
  private ops: QueueOp[] = [];
  private bodies: string[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  /** Batches posted so far, and how many of them the worker has finished (committed or failed). */
  private posted = 0;
  private finished = 0;
  private readonly waiting: Waiting[] = [];
  private readonly pages = new Map<number, PageRequest>();
  private nextPage = 1;
  /** Probes posted and not answered yet, oldest first. */
  private readonly probes: { resolve(): void; reject(err: Error): void }[] = [];
  /** What waits per recipient: items and bytes ([items, bytes]). */
  private readonly waitingFor = new Map<string, [number, number]>();
  private closing: Promise<void> | undefined;
  private gone: Error | undefined;
  private current: QueueStats;

  private constructor(
    private readonly worker: Worker,
    readonly maxSeq: number,
    usage: [string, number, number][],
    stats: StatsTuple,
    private readonly onError: (err: unknown) => void,
    private readonly onAcknowledged: OnAcknowledged,
  ) {
    for (const [recipient, items, bytes] of usage) this.waitingFor.set(recipient, [items, bytes]);
    this.current = { items: stats[0], bytes: stats[1] };
    worker.on('message', (m: WorkerMessage) => this.onMessage(m));
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) => {
      if (!this.closing) this.fail(new Error(`the relay queue worker stopped (exit code ${code})`));
    });
  }

  /** Starts the worker on `file` and waits until it has opened the database. */
  static async open(
    file: string,
    onError: (err: unknown) => void,
    onAcknowledged: OnAcknowledged = () => {},
  ): Promise<SqliteDeliveryQueue> {
    // Where SQLite would silently start afresh: an emptied file, a damaged WAL.
    checkDatabaseFiles(file, join(dirname(file), RELAY_KEY_FILE));
    const worker = startWorker(file);
    // Only our own listeners come off afterwards: Worker keeps internal ones (removeAllListeners would
    // take them too, and the port would stop delivering).
    let onMessage!: (m: WorkerMessage) => void;
    let onWorkerError!: (err: Error) => void;
    let onExit!: (code: number) => void;
    const first = await new Promise<WorkerMessage>((resolve, reject) => {
      onMessage = resolve;
      onWorkerError = reject;
      onExit = (code) => reject(new Error(`the relay queue worker stopped (exit code ${code})`));
      worker.once('message', onMessage).once('error', onWorkerError).once('exit', onExit);
    }).finally(() => worker.off('message', onMessage).off('error', onWorkerError).off('exit', onExit));
    if (first.t !== 'ready') {
      await worker.terminate();
      const message = first.t === 'fatal' ? first.message : 'unexpected message from the queue worker';
      const code = first.t === 'fatal' ? first.code : undefined;
      if (code === 'SQLITE_BUSY')
        throw new Error(`The delivery queue ${file} is in use by another relay.`, {
          cause: new QueueStorageError(message, code),
        });
      if (first.t === 'fatal' && first.problems) throw integrityStartError(file, first.problems);
      if (code !== undefined) throw databaseStartError(file, new QueueStorageError(message, code));
      throw new QueueStorageError(message, code);
    }
    return new SqliteDeliveryQueue(worker, first.maxSeq, first.usage, first.stats, onError, onAcknowledged);
  }

  enqueue(item: QueueItem): void {
    const w = this.waitingFor.get(item.recipient) ?? [0, 0];
    this.waitingFor.set(item.recipient, [w[0] + 1, w[1] + itemBytes(item)]);
    let body = -1;
    if (item.body !== undefined) {
      // A group message fans out the same string to every member, one enqueue after the other: it
      // crosses to the worker once. (Comparing with the previous body is cheap: the same string object,
      // or ciphertexts that differ within their first characters; a map would hash every body.)
      const last = this.bodies.length - 1;
      body = last >= 0 && this.bodies[last] === item.body ? last : this.bodies.push(item.body) - 1;
    }
    this.push([
      'e',
      item.seq,
      item.recipient,
      item.kind,
      item.from ?? null,
      item.group ?? null,
      item.id ?? null,
      body,
      item.event ?? null,
      item.ts,
    ]);
  }

  dequeue(recipient: string, seq: number): void {
    this.push(['d', recipient, seq]);
  }

  supersede(recipient: string, group: string): void {
    this.push(['s', recipient, group]);
  }

  deleteRecipient(recipient: string): void {
    this.push(['x', recipient]);
    this.waitingFor.delete(recipient);
  }

  usage(recipient: string): { items: number; bytes: number } {
    const [items, bytes] = this.waitingFor.get(recipient) ?? [0, 0];
    return { items, bytes };
  }

  renameUser(from: string, to: string): void {
    this.push(['r', from, to]);
  }

  page(recipient: string, after: number, limit: number): Promise<QueueItem[]> {
    const id = this.nextPage++;
    return new Promise((resolve, reject) => {
      this.push(['p', id, recipient, after, limit]);
      this.pages.set(id, { batch: this.posted + 1, resolve, reject });
    });
  }

  stats(): QueueStats {
    return this.current;
  }

  afterDurable(done: (err?: unknown) => void): void {
    this.assertOpen();
    const batch = this.ops.length > 0 ? this.posted + 1 : this.posted;
    this.waiting.push({ done, batch });
    this.release(); // nothing pending: runs once earlier callbacks have
  }

  /**
   * Writes, removes and syncs a probe row after everything called before it; resolves once that worked,
   * and from then on batches are applied again (after a failed one, the worker refuses them untried).
   */
  probe(): Promise<void> {
    this.assertOpen();
    this.post();
    return new Promise((resolve, reject) => {
      this.probes.push({ resolve, reject });
      this.worker.postMessage('probe');
    });
  }

  close(): Promise<void> {
    return (this.closing ??= (async () => {
      if (!this.gone) {
        this.post();
        // Every batch answered (committed or failed, callbacks run), then the worker closes the database.
        await new Promise<void>((resolve) => {
          this.waiting.push({ done: () => resolve(), batch: this.posted });
          this.release();
        });
        if (!this.gone) {
          const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
          this.worker.postMessage('close');
          await exited;
        }
      }
      this.fail(new Error('the delivery queue is closed'));
    })());
  }

  private push(op: QueueOp): void {
    this.assertOpen();
    this.ops.push(op);
    this.scheduled ??= setImmediate(() => this.post());
  }

  private post(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    if (this.ops.length === 0 || this.gone) return;
    const message: BatchMessage = { batch: ++this.posted, bodies: this.bodies, ops: this.ops };
    this.ops = [];
    this.bodies = [];
    this.worker.postMessage(message);
  }

  private onMessage(m: WorkerMessage): void {
    if (m.t === 'probe') {
      const p = this.probes.shift();
      if (m.error) p?.reject(new QueueStorageError(m.error.message, m.error.code));
      else p?.resolve();
      return;
    }
    if (m.t !== 'done') return;
    this.current = { items: m.stats[0], bytes: m.stats[1] };
    for (const ts of m.acknowledged) this.onAcknowledged(ts);
    for (const [id, rows] of m.pages) {
      const request = this.pages.get(id);
      this.pages.delete(id);
      request?.resolve(rows.map(toItem));
    }
    for (const [recipient, items, bytes] of m.freed) {
      const w = this.waitingFor.get(recipient);
      if (!w) continue;
      if (w[0] <= items) this.waitingFor.delete(recipient);
      else this.waitingFor.set(recipient, [w[0] - items, Math.max(0, w[1] - bytes)]);
    }
    if (m.usage) {
      // A failed batch rolled its inserts back: take the worker's count instead of ours.
      this.waitingFor.clear();
      for (const [recipient, items, bytes] of m.usage) this.waitingFor.set(recipient, [items, bytes]);
    }
    let error: QueueStorageError | undefined;
    if (m.error) {
      error = new QueueStorageError(m.error.message, m.error.code);
      this.onError(error);
      for (const [id, request] of this.pages) {
        if (request.batch > m.upTo) continue;
        this.pages.delete(id);
        request.reject(error);
      }
    }
    this.finished = m.upTo;
    this.release(error);
  }

  /** Runs, in order, the callbacks whose batch is finished (with the batch's error if it failed). */
  private release(error?: unknown): void {
    while (this.waiting.length > 0 && this.waiting[0]!.batch <= this.finished) {
      const w = this.waiting.shift()!;
      try {
        w.done(error);
      } catch (err) {
        this.onError(err);
      }
    }
  }

  /** The worker is gone: every waiting callback and page fails, later calls throw. */
  private fail(err: Error): void {
    if (this.gone) return;
    this.gone = err;
    if (!this.closing) this.onError(err);
    this.finished = Number.MAX_SAFE_INTEGER;
    for (const request of this.pages.values()) request.reject(err);
    this.pages.clear();
    for (const p of this.probes.splice(0)) p.reject(err);
    // Whatever was not reported durable is not known to be.
    this.release(this.closing ? undefined : err);
  }

  private assertOpen(): void {
    if (this.gone) throw this.gone;
    if (this.closing) throw new Error('the delivery queue is closed');
  }
}
