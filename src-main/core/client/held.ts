/**
 * Messages held while a contact's key change awaits the user's decision (docs/PROTOCOL.md, Client
 * behaviour, "Key changes"): direct messages under the contact's pending identity, and group messages
 * from that contact that no sender key we accepted decrypts. They are kept as received (ciphertext,
 * never decrypted while held) so that accepting the key processes them and rejecting it drops them.
 * Each is stored under `held/<from>/<n>` (n: 12 digits, arrival order):
 *
 *   u8 version=1 | u8 kind (1 direct, 2 group) | str id | str group ('' for direct) | u64 at ms
 *   | identity (194: the pending identity it was held under) | bytes body
 */
import { Reader, Writer } from '../encoding.js';
import { ErrorCode, StorageError } from '../errors.js';
import type { StateStore } from './stores.js';

/** Most messages held per contact; later ones are dropped (and reported) until the user decides. */
export const MAX_HELD_PER_CONTACT = 100;

/** One held message. */
export interface HeldMessage {
  /** Its state-store key. */
  readonly key: string;
  readonly kind: 'direct' | 'group';
  readonly from: string;
  readonly id: string;
  readonly group: string | undefined;
  readonly at: number;
  /** The pending identity (194 bytes) it was held under: it is processed only if that one is accepted. */
  readonly identity: Uint8Array;
  readonly body: Uint8Array;
}

type Change = [string, Uint8Array | null];

const PREFIX = 'held/';

/** The held messages of every contact, in arrival order. */
export class HeldMessages {
  private readonly byContact = new Map<string, HeldMessage[]>();
  private next = 0;

  /** Loads every held message. */
  async load(store: StateStore): Promise<void> {
    this.byContact.clear();
    for (const key of (await store.keys(PREFIX)).sort()) {
      const bytes = await store.get(key);
      if (!bytes) continue;
      const m = decodeHeld(key, bytes);
      this.list(m.from).push(m);
      this.next = Math.max(this.next, Number(key.slice(key.lastIndexOf('/') + 1)) + 1);
    }
  }

  /** How many messages from `userId` are held. */
  count(userId: string): number {
    return this.byContact.get(userId)?.length ?? 0;
  }

  /** Contacts with held messages. */
  contacts(): string[] {
    return [...this.byContact.keys()];
  }

  /** True if the message `id` from `from` is held already (a redelivery). */
  has(from: string, id: string): boolean {
    return this.byContact.get(from)?.some((m) => m.id === id) ?? false;
  }

  /** Holds a message; returns its state change, or undefined when the contact's limit is reached. */
  add(m: Omit<HeldMessage, 'key'>): Change | undefined {
    const list = this.list(m.from);
    if (list.length >= MAX_HELD_PER_CONTACT) return undefined;
    const key = `${PREFIX}${m.from}/${String(this.next++).padStart(12, '0')}`;
    const held = { ...m, key };
    list.push(held);
    return [key, encodeHeld(held)];
  }

  /** The messages held from `userId`, oldest first (a copy). */
  peek(userId: string): HeldMessage[] {
    return [...(this.byContact.get(userId) ?? [])];
  }

  /** Forgets one held message (the caller deletes its key from the store). */
  remove(m: HeldMessage): void {
    const list = this.byContact.get(m.from);
    if (!list) return;
    const rest = list.filter((x) => x.key !== m.key);
    if (rest.length > 0) this.byContact.set(m.from, rest);
    else this.byContact.delete(m.from);
  }

  /** Removes and returns every message held from `userId`, with the changes that delete them. */
  take(userId: string): { messages: HeldMessage[]; changes: Change[] } {
    const messages = this.byContact.get(userId) ?? [];
    this.byContact.delete(userId);
    return { messages, changes: messages.map((m): Change => [m.key, null]) };
  }

  private list(userId: string): HeldMessage[] {
    let list = this.byContact.get(userId);
    if (!list) {
      list = [];
      this.byContact.set(userId, list);
    }
    return list;
  }
}

function encodeHeld(m: HeldMessage): Uint8Array {
  return new Writer(300 + m.body.length)
    .u8(1)
    .u8(m.kind === 'direct' ? 1 : 2)
    .str(m.id)
    .str(m.group ?? '')
    .u64(m.at)
    .fixed(m.identity)
    .bytes(m.body)
    .finish();
}

function decodeHeld(key: string, bytes: Uint8Array): HeldMessage {
  try {
    const r = new Reader(bytes);
    if (r.u8() !== 1) throw new Error('version');
    const kind = r.u8();
    if (kind !== 1 && kind !== 2) throw new Error('kind');
    const id = r.str();
    const group = r.str();
    const at = r.u64();
    const identity = r.fixed(194).slice();
    const body = r.bytes().slice();
    r.end();
    const from = key.slice(PREFIX.length, key.lastIndexOf('/'));
    return {
      key,
      kind: kind === 1 ? 'direct' : 'group',
      from,
      id,
      group: group || undefined,
      at,
      identity,
      body,
    };
  } catch {
    throw new StorageError(ErrorCode.BAD_STATE, 'a held message is corrupt or of another version');
  }
}
