/**
 * Messages between the SQLite delivery queue (sqlite.ts, on the relay's event loop) and its worker
 * thread (sqlite-worker.ts). Operations travel as arrays in call order, in one message per event-loop
 * turn; a body shared by several items (a group message fanned out) travels once.
 */

/** The queue database's tables (`<dataDir>/queue.sqlite`); `body` keeps the sender's base64 as TEXT. */
export const QUEUE_SCHEMA = `
CREATE TABLE IF NOT EXISTS queue (
  seq INTEGER PRIMARY KEY,
  recipient TEXT NOT NULL, kind TEXT NOT NULL, sender TEXT, grp TEXT, msg_id TEXT,
  body TEXT, event TEXT, ts INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS queue_by_recipient ON queue (recipient, seq);
`;

/** `['e', seq, recipient, kind, from, group, id, bodyIndex (-1: none), event, ts]`: enqueue. */
export type EnqueueOp = [
  'e',
  number,
  string,
  string,
  string | null,
  string | null,
  string | null,
  number,
  string | null,
  number,
];
/** `['d', recipient, seq]`: dequeue one item. */
export type DequeueOp = ['d', string, number];
/** `['s', recipient, group]`: delete a recipient's queued head notices of a group. */
export type SupersedeOp = ['s', string, string];
/** `['x', recipient]`: delete every item of a recipient. */
export type DeleteRecipientOp = ['x', string];
/** `['p', requestId, recipient, after, limit]`: read a page. */
export type PageOp = ['p', number, string, number, number];
/** `['r', from, to]`: a user's items and the items it sent move to another id (canonical ids). */
export type RenameUserOp = ['r', string, string];
export type QueueOp = EnqueueOp | DequeueOp | SupersedeOp | DeleteRecipientOp | PageOp | RenameUserOp;

/**
 * Main → worker, besides batches: `'probe'` writes, removes and syncs a row (storage unavailable,
 * ../storage.ts) and, if that works, lets batches be applied again; `'close'` closes the database.
 */
export type ControlMessage = 'probe' | 'close';

/** Main → worker: a numbered batch of operations. */
export interface BatchMessage {
  readonly batch: number;
  readonly bodies: string[];
  readonly ops: QueueOp[];
}

/** A stored row as the worker reads it. */
export interface QueueRow {
  seq: number;
  recipient: string;
  kind: string;
  sender: string | null;
  grp: string | null;
  msg_id: string | null;
  body: string | null;
  event: string | null;
  ts: number;
}

/** `[items, bytes]` stored after a commit (QueueStats), kept by the worker as it applies operations. */
export type StatsTuple = [number, number];

/** Worker → main. */
export type WorkerMessage =
  /** Opened: the highest stored seq, and what is stored. */
  | {
      readonly t: 'ready';
      readonly maxSeq: number;
      readonly stats: StatsTuple;
      /** What waits per recipient: [recipient, items, bytes]. */
      readonly usage: [string, number, number][];
    }
  /** The database could not be opened (`problems`: what its integrity check found, if it ran). */
  | {
      readonly t: 'fatal';
      readonly message: string;
      readonly code?: string | undefined;
      readonly problems?: string[] | undefined;
    }
  /** The answer to a `'probe'` message: a probe write succeeded (no `error`) or failed. */
  | {
      readonly t: 'probe';
      readonly error?: { readonly message: string; readonly code?: string | undefined } | undefined;
    }
  /**
   * Batches up to `upTo` were committed durably (`error` unset) or rolled back (`error` set); the pages
   * they asked for, read inside that transaction (after the rollback if it failed); what is stored after it; and the `ts` of every item
   * a `dequeue` removed in it (none when it rolled back).
   */
  | {
      readonly t: 'done';
      readonly upTo: number;
      readonly error?: { readonly message: string; readonly code?: string | undefined } | undefined;
      readonly pages: [number, QueueRow[]][];
      readonly stats: StatsTuple;
      readonly acknowledged: number[];
      /** What the batches' deletions freed, per recipient: [recipient, items, bytes]. */
      readonly freed: [string, number, number][];
      /** After a failed batch: what waits per recipient now (the rolled-back inserts are gone). */
      readonly usage?: [string, number, number][] | undefined;
    };
