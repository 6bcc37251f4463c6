/**
 * Receiving: every 'deliver' frame (direct and group messages, receipts and durable group events),
 * handled under the client's lock in arrival order. A message's state changes are written in one
 * atomic batch before it is shown and before the relay is told it was received; the ids of handled
 * messages (`seen/<from>/<id>`, u64 ms) make a redelivery a no-op. Group messages that arrive before
 * their sender's key are held, unacknowledged, until the key comes or a timeout passes. While a
 * contact's key change awaits the user's decision, what comes under the new key is held undecrypted
 * (held.ts) and processed only if the user accepts that key.
 */
import type { EventEmitter } from 'node:events';
import {
  type PublicIdentity,
  decodePublicIdentity,
  encodePublicIdentity,
  sameIdentityKeys,
} from '../crypto/identity.js';
import { Reader, Writer, utf8Decode } from '../encoding.js';
import { CryptoError, E2EEError, ErrorCode, ProtocolError } from '../errors.js';
import { type ClientFrame, type RelayEvent, type RelayFrame, b64, unb64 } from '../protocol/wire.js';
import type { E2EEClientEvents, E2EEClientOptions } from './client.js';
import { type Content, ContentType, decodeContent } from './content.js';
import { isMemberWith } from '../crypto/membership.js';
import { announce } from './group-changes.js';
import type { Applied, Groups } from './groups.js';
import type { HeldMessage, HeldMessages } from './held.js';
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
  readonly held: HeldMessages;
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
/**
 * The seq of a message that comes from our own held store, not from the relay: it was acknowledged
 * when it was held, so nothing is acknowledged for it again (the relay's seqs start at 1).
 */
const LOCAL_SEQ = 0;

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

  /**
   * After a failed write: nothing more is handled, nor acknowledged, on this connection. The relay
   * keeps what was not acknowledged and delivers it again, in order, on the next connection (resume()).
   */
  private stalled = false;

  /** Loads the handled ids (replacing what is in memory: again after a failed write). */
  async load(): Promise<void> {
    this.seen.clear();
    this.early.splice(0);
    // Stored under random ids: restore the dedup list oldest first.
    const seen: [string, number][] = [];
    for (const key of await this.c.store.keys('seen/')) {
      const b = await this.c.store.get(key);
      seen.push([key.slice(5), b ? new Reader(b).u64() : 0]);
    }
    for (const [k, at] of seen.sort((a, b) => a[1] - b[1])) this.seen.set(k, at);
  }

  /** A new connection: the relay delivers again what was not acknowledged; handle it. */
  resume(): void {
    this.stalled = false;
  }

  /** Handles nothing more on this connection (its `ready` failed); the next one brings it all again. */
  stall(): void {
    this.stalled = true;
  }

  /**
   * Handles one delivered frame, then acknowledges it (unless it is held for its sender key). The
   * acknowledgement follows the write of everything the message changed (its ratchet state, its seen
   * id, and whatever the application stored in its event handlers): a write that fails (a full disk, a
   * read-only or damaged database) throws before it, and stalls the inbox until the next connection.
   */
  async deliver(f: DeliverFrame): Promise<void> {
    if (this.stalled) return; // not acknowledged: it comes again on the next connection
    try {
      await this.handle(f);
    } catch (e) {
      if (!(e instanceof E2EEError)) this.stalled = true;
      throw e;
    }
  }

  private async handle(f: DeliverFrame): Promise<void> {
    try {
      if (f.kind === 'event' && f.event) await this.onGroupEvent(f.event);
      else if (f.kind === 'receipt' && f.from && f.id) {
        // Only for a message we sent to that user (or to a group they are in).
        const target = this.c.outbox.sentTarget(f.id);
        const ok = f.group
          ? target === f.group && this.c.groups.isMember(f.group, f.from)
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
    if (seq !== LOCAL_SEQ) this.c.send({ t: 'received', seq });
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
    const body = unb64(f.body);
    const trust = this.c.trust;
    // With approval required, only sessions under the pinned identity are used: a message under any
    // other identity is held (or, under a rejected one, refused) before anything is decrypted.
    const approval = trust.requiresApproval && trust.pinnedIdentity(from) !== undefined;
    const claimed = approval ? this.c.sessions.claimedIdentity(body) : undefined;
    if (claimed && !trust.isPinned(from, claimed)) {
      const { verdict, changes } = trust.pin(from, encodePublicIdentity(claimed), 'message');
      if (verdict === 'rejected') {
        throw new CryptoError(
          ErrorCode.IDENTITY_REJECTED,
          `message from ${from} under a security key you rejected; dropped`,
        );
      }
      await this.hold({ kind: 'direct', from, id, group: undefined, body }, changes);
      return;
    }
    const meter = this.work.meter(from, this.c.now());
    let decrypted;
    try {
      decrypted = await this.c.sessions.decrypt(
        from,
        body,
        meter,
        approval ? (peer) => trust.isPinned(from, peer) : undefined,
      );
    } catch (e) {
      this.work.settle(from, meter, false, this.c.now());
      throw e;
    }
    this.work.settle(from, meter, true, this.c.now());
    const { result, changes } = decrypted;
    for (const [k, val] of trust.pin(from, encodePublicIdentity(result.peerIdentity), 'message').changes)
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
      await this.onSenderKey(from, content, result.peerIdentity, changes);
      return;
    }
    if (content.type !== ContentType.TEXT && content.type !== ContentType.BINARY) {
      await this.c.store.write(changes);
      throw new ProtocolError(ErrorCode.MALFORMED, 'group content in a direct message');
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

  /**
   * A sender key (SKDM) in a direct message: taken only from a full member of the group whose pairwise
   * session is under the identity the signed roster names. The sender's view of the group comes first:
   * if they are ahead (they may have just joined), we read the log before judging them.
   */
  private async onSenderKey(
    from: string,
    content: Content,
    peer: PublicIdentity,
    changes: Changes,
  ): Promise<void> {
    const group = content.group ?? '';
    try {
      if (this.c.groups.get(group) && content.view)
        this.take(
          group,
          await this.c.groups.checkView(group, from, content.view.epoch, content.view.head),
          changes,
        );
      const g = this.c.groups.get(group);
      if (!g || g.log.roster.get(this.c.userId)?.standing !== 'member' || !isMemberWith(g.log, from, peer))
        throw new ProtocolError(
          ErrorCode.NOT_A_MEMBER,
          `${from} sent a key for ${group} but is not a member of it (with this key) in its signed member list`,
        );
      g.session.processDistribution(from, content.data, this.c.now());
      changes.set(...this.c.groups.entry(group, g));
    } finally {
      await this.c.store.write(changes);
    }
    await this.retryEarly(group, from);
    await this.retryHeldGroup(group, from);
  }

  private async onGroup(f: DeliverFrame, retry = false): Promise<boolean> {
    const { from, id, group } = f;
    if (!from || !id || !group || !f.body)
      throw new ProtocolError(ErrorCode.MALFORMED, 'incomplete group message');
    if (this.seen.has(this.seenKey(from, id))) return true;
    const g = this.c.groups.get(group);
    if (!g || g.log.roster.get(this.c.userId)?.standing !== 'member')
      throw new ProtocolError(ErrorCode.NOT_A_MEMBER, `not a member of ${group}`);
    let result;
    const meter = this.work.meter(from, this.c.now());
    try {
      // Only full members' sender keys are ever taken in (onSenderKey), and a leaver's are erased.
      result = g.session.decrypt(unb64(f.body), this.c.now(), meter);
      this.work.settle(from, meter, true, this.c.now());
    } catch (e) {
      this.work.settle(from, meter, false, this.c.now());
      const unknownKey = e instanceof CryptoError && e.code === ErrorCode.UNKNOWN_KEY_ID;
      // While the sender's key change is pending, a message no accepted sender key decrypts may be under
      // a sender key that came with the new identity (held too): keep it for the user's decision.
      const pending = this.c.trust.blocks(from) ? this.c.trust.pendingIdentity(from) : undefined;
      if (!retry && unknownKey && pending) {
        await this.hold({ kind: 'group', from, id, group, body: unb64(f.body) }, [], pending);
        return true;
      }
      // The sender's key may still be on its way (it travels on a pairwise session): hold briefly.
      if (!retry && unknownKey) {
        this.early.push({ frame: f, at: this.c.now() });
        if (this.early.length > EARLY_GROUP_MESSAGES_KEPT) this.dropEarly(this.early.shift()!.frame);
        return false;
      }
      throw e;
    }
    if (result.senderId !== from)
      throw new ProtocolError(ErrorCode.WRONG_RECIPIENT, 'sender does not match envelope');
    const changes: Changes = new Map();
    this.markSeen(from, id, changes);
    let content;
    try {
      content = decodeContent(result.plaintext);
      if (
        content.id !== id ||
        (content.type !== ContentType.GROUP_TEXT && content.type !== ContentType.GROUP_BINARY) ||
        !content.view
      ) {
        throw new ProtocolError(ErrorCode.MALFORMED, 'group message content does not match its envelope');
      }
      // The sender's view of the member list, signed with the message: ours must agree.
      this.take(
        group,
        await this.c.groups.checkView(group, from, content.view.epoch, content.view.head),
        changes,
      );
    } catch (e) {
      changes.set(...this.c.groups.entry(group, g));
      await this.c.store.write(changes);
      throw e;
    }
    changes.set(...this.c.groups.entry(group, this.c.groups.get(group) ?? g));
    // Shown first, then remembered (see onDirect): a crash in between repeats it, never loses it.
    if (content.type === ContentType.GROUP_TEXT) {
      this.c.events.emit('groupMessage', { id, group, from, text: utf8Decode(content.data) });
    } else {
      this.c.events.emit('groupBinaryMessage', { id, group, from, data: content.data });
    }
    await this.c.store.write(changes);
    if (this.c.opts.ack?.rcvGroupMessage) this.c.send({ t: 'receipt', to: from, id, group });
    return true;
  }

  /**
   * Keeps a message for the user's decision on `from`'s pending identity (the one a PREKEY message
   * names, else the pending one), writing it with `changes` (the pending identity, when it is new).
   */
  private async hold(
    m: { kind: 'direct' | 'group'; from: string; id: string; group: string | undefined; body: Uint8Array },
    changes: [string, Uint8Array | null][],
    identity = this.c.trust.pendingIdentity(m.from)!,
  ): Promise<void> {
    const batch: Changes = new Map(changes);
    const added = this.c.held.has(m.from, m.id)
      ? null // a redelivery of a message held already
      : this.c.held.add({ ...m, at: this.c.now(), identity });
    if (added) batch.set(...added);
    if (batch.size > 0) await this.c.store.write(batch);
    if (added === undefined) {
      throw new CryptoError(
        ErrorCode.IDENTITY_CHANGED,
        `too many messages from ${m.from} are held until you decide on their new security key; this one was dropped`,
      );
    }
    if (added) this.c.events.emit('messagesHeld', { userId: m.from, count: this.c.held.count(m.from) });
  }

  /**
   * After the user decided on `from`'s key change: processes the held messages that came under the
   * identity now pinned (in arrival order, as if they had just arrived) and drops the others. Each
   * leaves the store once handled; a crash in between handles it again (a no-op: it is marked seen).
   */
  async release(from: string): Promise<{ released: number; dropped: number }> {
    const held = this.c.held.take(from);
    const counts = { released: 0, dropped: 0 };
    if (held.messages.length === 0) return counts;
    const pinned = this.c.trust.pinnedIdentity(from);
    const keep = (m: HeldMessage): boolean =>
      pinned !== undefined &&
      sameIdentityKeys(decodePublicIdentity(m.identity), decodePublicIdentity(pinned));
    for (const m of held.messages) {
      if (!keep(m)) counts.dropped++;
      else {
        counts.released++;
        const frame: DeliverFrame = {
          t: 'deliver',
          seq: LOCAL_SEQ,
          kind: m.kind,
          from: m.from,
          id: m.id,
          group: m.group,
          body: b64(m.body),
          ts: m.at,
        };
        try {
          if (m.kind === 'direct') await this.onDirect(frame);
          else await this.onGroup(frame);
        } catch (e) {
          if (!(e instanceof E2EEError)) throw e;
          this.e2eeError(e, m.from, m.group);
        }
      }
      await this.c.store.write(new Map([[m.key, null]]));
    }
    this.c.events.emit('messagesHeld', { userId: from, count: 0 });
    return counts;
  }

  /** Drops every message held from `from` (the user rejected the key they came under); returns how many. */
  async dropHeld(from: string): Promise<number> {
    const held = this.c.held.take(from);
    if (held.messages.length === 0) return 0;
    await this.c.store.write(new Map(held.changes));
    this.c.events.emit('messagesHeld', { userId: from, count: 0 });
    return held.messages.length;
  }

  /** Held group messages of `from` in `group` that a sender key accepted since decrypts: shown now. */
  private async retryHeldGroup(group: string, from: string): Promise<void> {
    const g = this.c.groups.get(group);
    if (!g || this.c.held.count(from) === 0) return;
    for (const m of this.c.held.peek(from)) {
      if (m.kind !== 'group' || m.group !== group || !g.session.hasSenderKey(from)) continue;
      const frame: DeliverFrame = {
        t: 'deliver',
        seq: LOCAL_SEQ,
        kind: 'group',
        from,
        id: m.id,
        group,
        body: b64(m.body),
        ts: m.at,
      };
      try {
        await this.onGroup(frame, true);
      } catch (e) {
        if (e instanceof CryptoError && e.code === ErrorCode.UNKNOWN_KEY_ID) continue; // still not ours
        if (!(e instanceof E2EEError)) throw e;
        this.e2eeError(e, from, group);
      }
      this.c.held.remove(m);
      await this.c.store.write(new Map([[m.key, null]]));
      this.c.events.emit('messagesHeld', { userId: from, count: this.c.held.count(from) });
    }
  }

  /** Adds what processing group entries changed to `changes`, and announces it. */
  private take(group: string, applied: Applied, changes: Changes): void {
    for (const [k, v] of applied.changes) changes.set(k, v);
    announce(this.c.events, this.c.userId, group, applied, this.c.groups.get(group)?.log);
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
    // A new entry of a group's signed log: verified and applied (or the missing ones read first); a
    // head notice: the log is read up to it (a head that differs at our epoch is a fork).
    const applied =
      e.type === 'groupEntry'
        ? await this.c.groups.receive(e.group, e.epoch, unb64(e.entry))
        : await this.c.groups.syncHead(e.group, e.epoch, unb64(e.head));
    const changes: Changes = new Map();
    this.take(e.group, applied, changes);
    if (changes.size > 0) await this.c.store.write(changes);
  }
}
