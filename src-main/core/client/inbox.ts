/**
 * Receiving: every 'deliver' frame (direct and group messages, receipts and durable group events),
 * handled under the client's lock in arrival order. A message's state changes are written in one
 * atomic batch before it is shown and before the relay is told it was received; the ids of handled
 * messages (`seen/<from>/<id>`, u64 ms) make a redelivery a no-op. Group messages that arrive before
 * their sender's key are held, unacknowledged, until the key comes or a timeout passes.
 */
import type { EventEmitter } from 'node:events';
import { encodePublicIdentity } from '../crypto/identity.js';
import { Reader, Writer, utf8Decode } from '../encoding.js';
import { CryptoError, E2EEError, ErrorCode, ProtocolError } from '../errors.js';
import { type ClientFrame, type RelayEvent, type RelayFrame, unb64 } from '../protocol/wire.js';
import type { E2EEClientEvents, E2EEClientOptions } from './client.js';
import { ContentType, decodeContent } from './content.js';
import type { GroupEvent, Groups } from './groups.js';
import type { Outbox } from './outbox.js';
import type { Sessions } from './sessions.js';
import type { StateStore } from './stores.js';
import type { ContactTrust } from './trust.js';
import { WorkBudget } from './work-budget.js';

/** A message, receipt or event the relay delivers (and keeps until we say we received it). */
export type DeliverFrame = Extract<RelayFrame, { t: 'deliver' }>;

/** The parts of its client the inbox works with. */
export interface InboxContext {
  readonly userId: string;
  /** The client's options (read when needed): which receipts to send. */
  readonly opts: Pick<E2EEClientOptions, 'ack'>;
  readonly now: () => number;
  readonly store: StateStore;
  readonly sessions: Sessions;
  readonly groups: Groups;
  readonly trust: ContactTrust;
  readonly outbox: Outbox;
  /** Where received messages and events are emitted (the client). */
  readonly events: EventEmitter<E2EEClientEvents>;
  /** Sends a frame to the relay (dropped while disconnected). */
  readonly send: (frame: ClientFrame) => void;
}

type Changes = Map<string, Uint8Array | null>;

/** How many handled message ids are remembered for dedup. */
const SEEN_IDS_KEPT = 20_000;
/** Group messages that arrive before their sender's key are held this long for the key to come. */
const EARLY_GROUP_MESSAGE_MS = 30_000;
const EARLY_GROUP_MESSAGES_KEPT = 200;

/** The 'e2eeError' payload for a failure (MALFORMED unless it is one of ours). */
export function e2eeErrorEvent(e: unknown, from?: string, group?: string): E2EEClientEvents['e2eeError'][0] {
  const code = e instanceof E2EEError ? e.code : ErrorCode.MALFORMED;
  const message = e instanceof Error ? e.message : String(e);
  return { code, message, from, group };
}

/** Handles delivered frames and remembers what was handled. */
export class Inbox {
  private readonly seen = new Map<string, number>();
  /** Group messages that arrived before their sender key; not acknowledged to the relay until handled. */
  private readonly early: { frame: DeliverFrame; at: number }[] = [];
  /** Decryption work per sender (docs/PROTOCOL.md "Bounded work"). */
  private readonly work = new WorkBudget();

  constructor(private readonly c: InboxContext) {}

  /** Loads the handled ids. */
  async load(): Promise<void> {
    // Stored under random ids: restore the dedup list oldest first.
    const seen: [string, number][] = [];
    for (const key of await this.c.store.keys('seen/')) {
      const b = await this.c.store.get(key);
      seen.push([key.slice(5), b ? new Reader(b).u64() : 0]);
    }
    for (const [k, at] of seen.sort((a, b) => a[1] - b[1])) this.seen.set(k, at);
  }

  /** Handles one delivered frame, then acknowledges it (unless it is held for its sender key). */
  async deliver(f: DeliverFrame): Promise<void> {
    try {
      if (f.kind === 'event' && f.event) await this.onGroupEvent(f.event);
      else if (f.kind === 'receipt' && f.from && f.id) {
        // Only for a message we sent to that user (or to a group they are in).
        const target = this.c.outbox.sentTarget(f.id);
        const ok = f.group
          ? target === f.group && this.c.groups.get(f.group)?.members.has(f.from) === true
          : target === f.from;
        if (ok)
          this.c.events.emit('ack', {
            id: f.id,
            from: this.c.userId,
            to: f.from,
            group: f.group,
            state: 'delivered',
          });
      } else if (f.kind === 'direct') await this.onDirect(f);
      else if (f.kind === 'group' && !(await this.onGroup(f))) return; // held: acknowledged when handled
    } catch (e) {
      if (!(e instanceof E2EEError)) throw e;
      this.e2eeError(e, f.from, f.group);
    }
    this.received(f.seq);
  }

  /** Reports and acknowledges held group messages whose sender key never came. */
  expireEarly(): void {
    const now = this.c.now();
    const keep = this.early.filter((item) => now - item.at <= EARLY_GROUP_MESSAGE_MS);
    for (const item of this.early) if (!keep.includes(item)) this.dropEarly(item.frame);
    this.early.splice(0, this.early.length, ...keep);
  }

  private received(seq: number): void {
    this.c.send({ t: 'received', seq });
  }

  private e2eeError(e: unknown, from?: string, group?: string): void {
    this.c.events.emit('e2eeError', e2eeErrorEvent(e, from, group));
  }

  private seenKey(from: string, id: string): string {
    return `${from}/${id}`;
  }

  private markSeen(from: string, id: string, changes: Changes): void {
    const key = this.seenKey(from, id);
    const at = this.c.now();
    this.seen.set(key, at);
    changes.set(`seen/${key}`, new Writer(8).u64(at).finish());
    if (this.seen.size > SEEN_IDS_KEPT) {
      const oldest = this.seen.keys().next().value!;
      this.seen.delete(oldest);
      changes.set(`seen/${oldest}`, null);
    }
  }

  private async onDirect(f: DeliverFrame): Promise<void> {
    const from = f.from;
    const id = f.id;
    if (!from || !id || !f.body) throw new ProtocolError(ErrorCode.MALFORMED, 'incomplete direct message');
    if (this.seen.has(this.seenKey(from, id))) return; // redelivery of something already handled
    const meter = this.work.meter(from, this.c.now());
    let decrypted;
    try {
      decrypted = await this.c.sessions.decrypt(from, unb64(f.body), meter);
    } catch (e) {
      this.work.settle(from, meter, false, this.c.now());
      throw e;
    }
    this.work.settle(from, meter, true, this.c.now());
    const { result, changes } = decrypted;
    for (const [k, val] of this.c.trust.pin(from, encodePublicIdentity(result.peerIdentity)))
      changes.set(k, val);
    this.markSeen(from, id, changes);
    let content;
    try {
      content = decodeContent(result.plaintext);
      if (content.id !== id)
        throw new ProtocolError(ErrorCode.MALFORMED, 'message id does not match its envelope');
    } catch (e) {
      await this.c.store.write(changes);
      throw e;
    }
    if (content.type === ContentType.SENDER_KEY) {
      const group = content.group ?? '';
      const g = this.c.groups.get(group);
      if (!g || !g.members.has(from)) {
        await this.c.store.write(changes);
        throw new ProtocolError(
          ErrorCode.NOT_A_MEMBER,
          `${from} sent a key for ${group} but is not a member`,
        );
      }
      g.session.processDistribution(from, content.data, this.c.now());
      changes.set(...this.c.groups.entry(group, g));
      await this.c.store.write(changes);
      await this.retryEarly(group, from);
      return;
    }
    // Shown first, then remembered: a crash in between brings the message again (the relay still has
    // it and our saved ratchet state can decrypt it again), and the app keeps one copy per id. The
    // other order could lose it: remembered as seen, never shown.
    if (content.type === ContentType.TEXT)
      this.c.events.emit('message', { id, from, text: utf8Decode(content.data) });
    else this.c.events.emit('binaryMessage', { id, from, data: content.data });
    await this.c.store.write(changes);
    if (this.c.opts.ack?.rcvDirectMessage) this.c.send({ t: 'receipt', to: from, id });
  }

  private async onGroup(f: DeliverFrame, retry = false): Promise<boolean> {
    const { from, id, group } = f;
    if (!from || !id || !group || !f.body)
      throw new ProtocolError(ErrorCode.MALFORMED, 'incomplete group message');
    if (this.seen.has(this.seenKey(from, id))) return true;
    const g = this.c.groups.get(group);
    if (!g || !g.members.has(this.c.userId))
      throw new ProtocolError(ErrorCode.NOT_A_MEMBER, `not a member of ${group}`);
    if (!g.members.has(from))
      throw new ProtocolError(ErrorCode.NOT_A_MEMBER, `${from} is not a member of ${group}`);
    let result;
    const meter = this.work.meter(from, this.c.now());
    try {
      result = g.session.decrypt(unb64(f.body), this.c.now(), meter);
      this.work.settle(from, meter, true, this.c.now());
    } catch (e) {
      this.work.settle(from, meter, false, this.c.now());
      // The sender's key may still be on its way (it travels on a pairwise session): hold briefly.
      if (!retry && e instanceof CryptoError && e.code === ErrorCode.UNKNOWN_KEY_ID) {
        this.early.push({ frame: f, at: this.c.now() });
        if (this.early.length > EARLY_GROUP_MESSAGES_KEPT) this.dropEarly(this.early.shift()!.frame);
        return false;
      }
      throw e;
    }
    if (result.senderId !== from)
      throw new ProtocolError(ErrorCode.WRONG_RECIPIENT, 'sender does not match envelope');
    const changes: Changes = new Map([this.c.groups.entry(group, g)]);
    this.markSeen(from, id, changes);
    let content;
    try {
      content = decodeContent(result.plaintext);
      if (content.id !== id || content.type === ContentType.SENDER_KEY) {
        throw new ProtocolError(ErrorCode.MALFORMED, 'group message content does not match its envelope');
      }
    } catch (e) {
      await this.c.store.write(changes);
      throw e;
    }
    // Shown first, then remembered (see onDirect): a crash in between repeats it, never loses it.
    if (content.type === ContentType.TEXT) {
      this.c.events.emit('groupMessage', { id, group, from, text: utf8Decode(content.data) });
    } else {
      this.c.events.emit('groupBinaryMessage', { id, group, from, data: content.data });
    }
    await this.c.store.write(changes);
    if (this.c.opts.ack?.rcvGroupMessage) this.c.send({ t: 'receipt', to: from, id, group });
    return true;
  }

  /** Retries held group messages once a sender's key arrives; reports the ones that expired. */
  private async retryEarly(group: string, from: string): Promise<void> {
    const now = this.c.now();
    const keep: typeof this.early = [];
    for (const item of this.early.splice(0)) {
      if (item.frame.group === group && item.frame.from === from) {
        try {
          await this.onGroup(item.frame, true);
        } catch (e) {
          if (!(e instanceof E2EEError)) throw e;
          this.e2eeError(e, from, group);
        }
        this.received(item.frame.seq);
      } else if (now - item.at > EARLY_GROUP_MESSAGE_MS) {
        this.dropEarly(item.frame);
      } else keep.push(item);
    }
    this.early.push(...keep);
  }

  private dropEarly(frame: DeliverFrame): void {
    this.e2eeError(
      new CryptoError(ErrorCode.UNKNOWN_KEY_ID, 'no sender key arrived for this message'),
      frame.from,
      frame.group,
    );
    this.received(frame.seq);
  }

  private async onGroupEvent(e: RelayEvent): Promise<void> {
    if (e.type === 'userCreated' || e.type === 'userDeleted') {
      this.c.events.emit(e.type, { userId: e.userId });
      return;
    }
    const changes = this.c.groups.apply(e);
    // A member event for a group we do not know changes nothing.
    if (changes.size > 0) await this.c.store.write(changes);
    this.emitGroupEvent(e);
  }

  private emitGroupEvent(e: GroupEvent): void {
    switch (e.type) {
      case 'groupJoin':
        this.c.events.emit('groupJoin', {
          group: e.group,
          creator: this.c.groups.get(e.group)?.creator ?? '',
          members: [...e.members],
        });
        return;
      case 'groupMemberJoin':
      case 'groupMemberLeave':
        this.c.events.emit(e.type, { group: e.group, userId: e.userId });
        return;
      default:
        this.c.events.emit(e.type, { group: e.group });
    }
  }
}
