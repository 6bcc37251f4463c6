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
import { QUEUE_SCHEMA, type BatchMessage, type QueueRow, type WorkerMessage } from './sqlite-protocol.js';

const port = parentPort!;
const post = (m: WorkerMessage): void => port.postMessage(m);

function open(file: string): Database.Database {
  // No busy wait: with the exclusive lock only another relay can hold the database, and it won't let go.
  const db = new Database(file, { timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
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
    post({ t: 'fatal', message: String(err), code: (err as { code?: string }).code });
    return;
  }
  const insert = db.prepare(
    `INSERT INTO queue (seq, recipient, kind, sender, grp, msg_id, body, event, ts)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const remove = db.prepare<[number, string], { bytes: number }>(
    "DELETE FROM queue WHERE seq = ? AND recipient = ? RETURNING length(coalesce(body, '')) + length(coalesce(event, '')) AS bytes",
  );
  const usage = db.prepare<[], { recipient: string; items: number; bytes: number }>(
    `SELECT recipient, count(*) AS items,
            sum(length(coalesce(body, '')) + length(coalesce(event, ''))) AS bytes
       FROM queue GROUP BY recipient`,
  );
  const usageRows = (): [string, number, number][] => usage.all().map((u) => [u.recipient, u.items, u.bytes]);
  const removeAll = db.prepare<[string]>('DELETE FROM queue WHERE recipient = ?');
  const supersede = db.prepare<[string, string], { bytes: number }>(
    `DELETE FROM queue WHERE recipient = ? AND kind = 'event' AND grp = ?
     RETURNING length(coalesce(body, '')) + length(coalesce(event, '')) AS bytes`,
  );
  const page = db.prepare<[string, number, number], QueueRow>(
    'SELECT * FROM queue WHERE recipient = ? AND seq > ? ORDER BY seq LIMIT ?',
  );
  const maxSeq = db.prepare<[], { m: number | null }>('SELECT max(seq) AS m FROM queue').get()?.m ?? 0;

  const apply = db.transaction(
    (batches: BatchMessage[], pages: [number, QueueRow[]][], freed: Map<string, [number, number]>) => {
      for (const { bodies, ops } of batches) {
        for (let i = 0; i < ops.length; i++) {
          const op = ops[i]!;
          switch (op[0]) {
            case 'e':
              insert.run(
                op[1],
                op[2],
                op[3],
                op[4],
                op[5],
                op[6],
                op[7] < 0 ? null : bodies[op[7]]!,
                op[8],
                op[9],
              );
              break;
            case 'd': {
              const row = remove.get(op[2], op[1]);
              if (row) {
                const f = freed.get(op[1]) ?? [0, 0];
                freed.set(op[1], [f[0] + 1, f[1] + row.bytes]);
              }
              break;
            }
            case 's': {
              const rows = supersede.all(op[1], op[2]);
              if (rows.length > 0) {
                const f = freed.get(op[1]) ?? [0, 0];
                freed.set(op[1], [f[0] + rows.length, f[1] + rows.reduce((n, r) => n + r.bytes, 0)]);
              }
              break;
            }
            case 'x':
              removeAll.run(op[1]);
              break;
            case 'p':
              pages.push([op[1], page.all(op[2], op[3], op[4])]);
              break;
          }
          if (i === ops.length >> 1) failpoint('queue.mid-commit');
        }
      }
    },
  );

  port.on('message', (first: BatchMessage | 'close') => {
    if (first === 'close') {
      db.close();
      port.close();
      return;
    }
    const batches = [first];
    let closing = false;
    for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
      if (m.message === 'close') {
        closing = true;
        break;
      }
      batches.push(m.message as BatchMessage);
    }
    const upTo = batches[batches.length - 1]!.batch;
    const pages: [number, QueueRow[]][] = [];
    const freed = new Map<string, [number, number]>();
    try {
      apply(batches, pages, freed);
      post({ t: 'done', upTo, pages, freed: [...freed].map(([r, [n, b]]) => [r, n, b]) });
    } catch (err) {
      // Rolled back: these batches' writes are gone, their pages were read inside it and are void.
      let now: [string, number, number][] | undefined;
      try {
        now = usageRows();
      } catch {
        now = undefined;
      }
      post({
        t: 'done',
        upTo,
        error: { message: String(err), code: (err as { code?: string }).code },
        pages: [],
        freed: [],
        usage: now,
      });
    }
    if (closing) {
      db.close();
      port.close();
    }
  });
  post({ t: 'ready', maxSeq, usage: usageRows() });
}

main();
