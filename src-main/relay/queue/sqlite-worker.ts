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
  const remove = db.prepare<[number, string]>('DELETE FROM queue WHERE seq = ? AND recipient = ?');
  const removeAll = db.prepare<[string]>('DELETE FROM queue WHERE recipient = ?');
  const renameRecipient = db.prepare<[string, string]>('UPDATE queue SET recipient = ? WHERE recipient = ?');
  const renameSender = db.prepare<[string, string]>('UPDATE queue SET sender = ? WHERE sender = ?');
  const page = db.prepare<[string, number, number], QueueRow>(
    'SELECT * FROM queue WHERE recipient = ? AND seq > ? ORDER BY seq LIMIT ?',
  );
  const maxSeq = db.prepare<[], { m: number | null }>('SELECT max(seq) AS m FROM queue').get()?.m ?? 0;

  const apply = db.transaction((batches: BatchMessage[], pages: [number, QueueRow[]][]) => {
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
          case 'd':
            remove.run(op[2], op[1]);
            break;
          case 'x':
            removeAll.run(op[1]);
            break;
          case 'p':
            pages.push([op[1], page.all(op[2], op[3], op[4])]);
            break;
          case 'r':
            renameRecipient.run(op[2], op[1]);
            renameSender.run(op[2], op[1]);
            break;
        }
        if (i === ops.length >> 1) failpoint('queue.mid-commit');
      }
    }
  });

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
    try {
      apply(batches, pages);
      post({ t: 'done', upTo, pages });
    } catch (err) {
      // Rolled back: these batches' writes are gone, their pages were read inside it and are void.
      post({
        t: 'done',
        upTo,
        error: { message: String(err), code: (err as { code?: string }).code },
        pages: [],
      });
    }
    if (closing) {
      db.close();
      port.close();
    }
  });
  post({ t: 'ready', maxSeq });
}

main();
