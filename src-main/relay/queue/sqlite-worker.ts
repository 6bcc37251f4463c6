/**
 * The worker thread that owns the delivery queue's SQLite database (`<dataDir>/queue.sqlite`): it
 * applies the operations the relay sends in order, in one transaction per wake-up, commits with
 * synchronous=FULL (the fsync happens here, never on the relay's event loop) and reports which batches
 * are durable. Every batch waiting when it wakes joins the same transaction, so one fsync covers
 * whatever arrived while the previous commit ran (group commit).
 */
import Database from 'better-sqlite3';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { failpoint } from '../failpoints.js';
import { isStorageFault } from '../storage.js';
import {
  QUEUE_SCHEMA,
  type BatchMessage,
  type ControlMessage,
  type QueueRow,
  type StatsTuple,
  type WorkerMessage,
} from './sqlite-protocol.js';

const port = parentPort!;
const post = (m: WorkerMessage): void => port.postMessage(m);

function open(file: string): Database.Database {
  // No busy wait: with the exclusive lock only another relay can hold the database, and it won't let go.
  const db = new Database(file, { timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    // A damaged queue refuses to start (the relay names the file and the recovery step).
    const problems = (db.pragma('quick_check') as { quick_check: string }[])
      .map((r) => r.quick_check)
      .filter((r) => r !== 'ok');
    if (problems.length > 0) throw Object.assign(new Error('integrity check failed'), { problems });
    db.exec(QUEUE_SCHEMA);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

function main(): void {
  let db: Database.Database;
  try {
    db = open((workerData as { file: string }).file);
  } catch (err) {
    post({
      t: 'fatal',
      message: String(err),
      code: (err as { code?: string }).code,
      problems: (err as { problems?: string[] }).problems,
    });
    return;
  }
  const insert = db.prepare(
    `INSERT INTO queue (seq, recipient, kind, sender, grp, msg_id, body, event, ts)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  // What the queue holds is counted as operations apply (stats for the relay's metrics), so nothing
  // ever has to scan the table but this once at start.
  const payload = 'coalesce(length(body), 0) + coalesce(length(event), 0)';
  const remove = db.prepare<[number, string], { ts: number; bytes: number }>(
    `DELETE FROM queue WHERE seq = ? AND recipient = ? RETURNING ts, ${payload} AS bytes`,
  );
  const removeAll = db.prepare<[string]>('DELETE FROM queue WHERE recipient = ?');
  const supersede = db.prepare<[string, string], { bytes: number }>(
    `DELETE FROM queue WHERE recipient = ? AND kind = 'event' AND grp = ? RETURNING ${payload} AS bytes`,
  );
  // Per recipient (mailbox quotas): read once at start and after a failed batch; deletions reported.
  const usage = db.prepare<[], { recipient: string; items: number; bytes: number }>(
    `SELECT recipient, count(*) AS items, total(${payload}) AS bytes FROM queue GROUP BY recipient`,
  );
  const usageRows = (): [string, number, number][] => usage.all().map((u) => [u.recipient, u.items, u.bytes]);
  const sizeOf = db.prepare<[string], { n: number; bytes: number }>(
    `SELECT count(*) AS n, total(${payload}) AS bytes FROM queue WHERE recipient = ?`,
  );
  const total = db
    .prepare<[], { n: number; bytes: number }>(`SELECT count(*) AS n, total(${payload}) AS bytes FROM queue`)
    .get()!;
  let stats: StatsTuple = [total.n, total.bytes];
  let acknowledged: number[] = [];
  let renamed = false;
  const renameRecipient = db.prepare<[string, string]>('UPDATE queue SET recipient = ? WHERE recipient = ?');
  const renameSender = db.prepare<[string, string]>('UPDATE queue SET sender = ? WHERE sender = ?');
  const page = db.prepare<[string, number, number], QueueRow>(
    'SELECT * FROM queue WHERE recipient = ? AND seq > ? ORDER BY seq LIMIT ?',
  );
  const maxSeq = db.prepare<[], { m: number | null }>('SELECT max(seq) AS m FROM queue').get()?.m ?? 0;

  const apply = db.transaction(
    (batches: BatchMessage[], pages: [number, QueueRow[]][], freed: Map<string, [number, number]>) => {
      let [items, bytes] = stats;
      const free = (recipient: string, n: number, b: number): void => {
        const f = freed.get(recipient) ?? [0, 0];
        freed.set(recipient, [f[0] + n, f[1] + b]);
      };
      for (const { bodies, ops } of batches) {
        for (let i = 0; i < ops.length; i++) {
          const op = ops[i]!;
          switch (op[0]) {
            case 'e': {
              const body = op[7] < 0 ? null : bodies[op[7]]!;
              insert.run(op[1], op[2], op[3], op[4], op[5], op[6], body, op[8], op[9]);
              items++;
              bytes += (body?.length ?? 0) + (op[8]?.length ?? 0);
              break;
            }
            case 'd': {
              const removed = remove.get(op[2], op[1]);
              if (removed) {
                items--;
                bytes -= removed.bytes;
                acknowledged.push(removed.ts);
                free(op[1], 1, removed.bytes);
              }
              break;
            }
            case 's': {
              const rows = supersede.all(op[1], op[2]);
              const b = rows.reduce((n, r) => n + r.bytes, 0);
              items -= rows.length;
              bytes -= b;
              if (rows.length > 0) free(op[1], rows.length, b);
              break;
            }
            case 'x': {
              const size = sizeOf.get(op[1])!;
              removeAll.run(op[1]);
              items -= size.n;
              bytes -= size.bytes;
              break;
            }
            case 'p':
              pages.push([op[1], page.all(op[2], op[3], op[4])]);
              break;
            case 'r':
              renameRecipient.run(op[2], op[1]);
              renameSender.run(op[2], op[1]);
              renamed = true; // the per-recipient counts are sent afresh
              break;
          }
          if (i === ops.length >> 1) failpoint('queue.mid-commit');
        }
      }
      stats = [items, bytes];
    },
  );

  /**
   * Set once a batch failed with a storage fault (a full disk…): later batches are refused untried,
   * their pages still read, until a probe write succeeds. The relay refuses new writes meanwhile, and
   * the batches it posted before it learned of the failure fail too, so no write made after a failed
   * one is committed before the relay has told its sender (every sender's order holds).
   */
  let failed: { message: string; code?: string | undefined } | undefined;
  const readPages = (batches: BatchMessage[]): [number, QueueRow[]][] => {
    const pages: [number, QueueRow[]][] = [];
    for (const { ops } of batches)
      for (const op of ops) if (op[0] === 'p') pages.push([op[1], page.all(op[2], op[3], op[4])]);
    return pages;
  };
  const probe = (): void => {
    try {
      db.exec('CREATE TABLE IF NOT EXISTS storage_probe (x BLOB)');
      db.exec('INSERT INTO storage_probe VALUES (zeroblob(65536))');
      db.exec('DELETE FROM storage_probe');
      failed = undefined;
      post({ t: 'probe' });
    } catch (err) {
      post({ t: 'probe', error: { message: String(err), code: (err as { code?: string }).code } });
    }
  };
  const refuse = (upTo: number, batches: BatchMessage[], error: { message: string; code?: string }): void => {
    let now: [string, number, number][] | undefined;
    let pages: [number, QueueRow[]][] = [];
    try {
      now = usageRows();
      pages = readPages(batches);
    } catch {
      now = undefined;
    }
    // Rolled back or not tried: these batches' writes are gone (`stats` was not updated), their pages
    // are read from what is committed, and nothing they dequeued was removed.
    post({ t: 'done', upTo, error, pages, stats, acknowledged: [], freed: [], usage: now });
  };

  const run = (batches: BatchMessage[]): void => {
    const upTo = batches[batches.length - 1]!.batch;
    if (failed) {
      refuse(upTo, batches, failed);
      return;
    }
    const pages: [number, QueueRow[]][] = [];
    const freed = new Map<string, [number, number]>();
    try {
      apply(batches, pages, freed);
      post({
        t: 'done',
        upTo,
        pages,
        stats,
        acknowledged,
        freed: [...freed].map(([r, [n, b]]) => [r, n, b]),
        ...(renamed ? { usage: usageRows() } : {}),
      });
    } catch (err) {
      const error = { message: String(err), code: (err as { code?: string }).code };
      // A full disk or I/O errors: later batches wait for a probe. Anything else fails this batch only.
      if (isStorageFault(err)) failed = error;
      refuse(upTo, batches, error);
    }
    acknowledged = [];
    renamed = false;
  };

  port.on('message', (first: BatchMessage | ControlMessage) => {
    const batches: BatchMessage[] = [];
    let control: ControlMessage | undefined = typeof first === 'string' ? first : undefined;
    if (typeof first !== 'string') {
      batches.push(first);
      for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
        if (typeof m.message === 'string') {
          control = m.message as ControlMessage;
          break;
        }
        batches.push(m.message as BatchMessage);
      }
    }
    if (batches.length > 0) run(batches);
    if (control === 'probe') probe();
    else if (control === 'close') {
      db.close();
      port.close();
    }
  });
  post({ t: 'ready', maxSeq, stats, usage: usageRows() });
}

main();
