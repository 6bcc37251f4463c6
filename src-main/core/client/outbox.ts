/**
 * Messages on their way to the relay. A message is stored in the outbox in the same atomic batch as
 * the session or group state it was encrypted with, so a crash never keeps one without the other; it
 * is re-sent after every authentication until the relay's 'sent' ack removes it, and dropped only
 * when the relay refuses it for good (a relay out of storage keeps it here: STORAGE_UNAVAILABLE). Stored under `outbox/<id>` as
 * the JSON of an OutboxEntry.
 */
import { randomUUID } from 'node:crypto';
import { utf8Decode, utf8Encode } from '../encoding.js';
import { RelayError, UsageError } from '../errors.js';
import { type ClientFrame, MessageId } from '../protocol/wire.js';
import type { StateStore } from './stores.js';
import * as v from 'valibot';

/** A frame the outbox carries: a direct or group message. */
export type OutgoingFrame = Extract<ClientFrame, { t: 'send' } | { t: 'groupSend' }>;

/** One queued message as stored. */
export interface OutboxEntry {
  frame: OutgoingFrame;
  /** Internal messages (sender-key distribution) resolve nobody and emit no ack. */
  internal: boolean;
  /** Queue position: after a restart the outbox is re-sent in this order (keys are random ids). */
  order: number;
}

interface Waiter {
  resolve: (id: string) => void;
  reject: (e: Error) => void;
}

/** Relay refusals that a retry cannot fix: the message is dropped and its sender told. */
const PERMANENT_SEND_ERRORS = new Set([
  'UNKNOWN_USER',
  'UNKNOWN_GROUP',
  'NOT_A_MEMBER',
  'BAD_FRAME',
  'FORBIDDEN',
  // The recipient's mailbox is full: the message is not sent (the user may try again later).
  'MAILBOX_FULL',
]);
/**
 * The relay cannot store anything now (a full disk): the message stays in the outbox and its caller is
 * told at once. It is not sent again on a timer: the relay refuses every later write of this
 * connection too and closes it (1013) once it can store again, and the next authentication re-sends
 * the whole outbox in order, so nothing sent after the refused message overtakes it.
 */
const STORAGE_UNAVAILABLE = 'STORAGE_UNAVAILABLE';
const RETRY_SEND_MS = 1000;
/** How many sent ids are remembered for matching delivery receipts (as many as received ids). */
const SENT_IDS_KEPT = 20_000;
const PREFIX = 'outbox/';

/** The client's queue of unacknowledged messages, with the callers waiting for their 'sent' acks. */
export class Outbox {
  private readonly entries = new Map<string, OutboxEntry>();
  private order = 0;
  /** Message ids waiting for the relay's 'sent' ack. */
  private readonly awaitingSent = new Map<string, Waiter>();
  /** Ids we sent, with their recipient or group, so a receipt is only accepted for a real message. */
  private readonly sentTo = new Map<string, string>();

  constructor(
    private readonly store: StateStore,
    /** Sends a frame with a fresh rid (a no-op while not authenticated). */
    private readonly transmit: (frame: OutgoingFrame) => void,
    /** Reports a failed background write. */
    private readonly fail: (e: Error) => void,
  ) {}

  /** Loads the stored outbox in queue order. */
  async load(): Promise<void> {
    const entries: OutboxEntry[] = [];
    for (const key of await this.store.keys(PREFIX)) {
      const b = await this.store.get(key);
      if (b) entries.push(JSON.parse(utf8Decode(b)) as OutboxEntry);
    }
    for (const e of entries.sort((a, b) => a.order - b.order)) {
      this.entries.set(e.frame.id, e);
      this.order = Math.max(this.order, e.order);
      this.sentTo.set(e.frame.id, recipientOf(e.frame));
    }
  }

  /** The caller's message id, checked (fresh, valid), or a random UUID. */
  newId(id: string | undefined): string {
    id ??= randomUUID();
    if (!v.is(MessageId, id)) throw new TypeError('id must be 8-64 of A-Z a-z 0-9 _ -');
    if (this.entries.has(id) || this.awaitingSent.has(id))
      throw new UsageError(`message ${id} is already being sent`);
    return id;
  }

  /** Resolves with `id` once the relay has durably accepted the message (rejects if it refuses it for good). */
  expectSent(id: string): Promise<string> {
    return new Promise<string>((resolve, reject) => this.awaitingSent.set(id, { resolve, reject }));
  }

  /** Forgets the waiter of a message that could not be queued. */
  abandon(id: string): void {
    this.awaitingSent.delete(id);
  }

  /** The recipient or group a message of ours went to, if we sent it. */
  sentTarget(id: string): string | undefined {
    return this.sentTo.get(id);
  }

  /**
   * Persists the frame together with the state it depends on, then queues and transmits it. Nothing
   * of it is queued before the write succeeds: a frame whose write failed must never leave, because
   * the state it consumed (a ratchet or sender-key counter) is read back from the store and used again
   * for the next message. Sending both would encrypt two plaintexts under one key and nonce.
   */
  async queue(
    frame: OutgoingFrame,
    internal: boolean,
    changes: [string, Uint8Array | null][],
  ): Promise<void> {
    const entry: OutboxEntry = { frame, internal, order: ++this.order };
    await this.store.write(
      new Map([...changes, [`${PREFIX}${frame.id}`, utf8Encode(JSON.stringify(entry))]]),
    );
    this.entries.set(frame.id, entry);
    if (!internal) this.rememberSent(frame.id, recipientOf(frame));
    this.transmit(frame);
  }

  /** Transmits every queued message in queue order (after authentication). */
  flush(): void {
    for (const entry of this.entries.values()) this.transmit(entry.frame);
  }

  /** Removes a message the relay accepted; returns it with its waiter, or undefined if unknown. */
  take(id: string): { entry: OutboxEntry; waiter: Waiter | undefined } | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    this.entries.delete(id);
    void this.store.write(new Map([[`${PREFIX}${id}`, null]])).catch((e: Error) => this.fail(e));
    const waiter = this.awaitingSent.get(id);
    this.awaitingSent.delete(id);
    return { entry, waiter };
  }

  /** The relay refused the message sent with `rid`: drop it only if retrying cannot help. */
  refused(rid: number, code: string, message: string): void {
    for (const [id, entry] of this.entries) {
      if (entry.frame.rid !== rid) continue;
      if (PERMANENT_SEND_ERRORS.has(code)) this.take(id)?.waiter?.reject(new RelayError(code, message));
      else if (code === STORAGE_UNAVAILABLE) {
        // Kept: the caller learns why it is late; the 'ack' event reports it sent later.
        this.awaitingSent.get(id)?.reject(new RelayError(code, message));
        this.awaitingSent.delete(id);
      } else
        setTimeout(() => this.entries.get(id) === entry && this.transmit(entry.frame), RETRY_SEND_MS).unref();
    }
  }

  private rememberSent(id: string, to: string): void {
    this.sentTo.set(id, to);
    if (this.sentTo.size > SENT_IDS_KEPT) this.sentTo.delete(this.sentTo.keys().next().value!);
  }
}

function recipientOf(frame: OutgoingFrame): string {
  return frame.t === 'send' ? frame.to : frame.group;
}
