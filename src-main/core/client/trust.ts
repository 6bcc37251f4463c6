/**
 * Trust on first use of contacts' identity keys, and the user's decision when one changes
 * (docs/PROTOCOL.md, Client behaviour, "Key changes"). The first identity seen for a user id (in a
 * prekey bundle or a message) is pinned under `contact/<id>`. Another one later is, when the client
 * requires approval (the default), kept as the contact's **pending** identity under `changed/<id>`
 * until the user accepts it (with the safety number they compared) or rejects it; a rejected identity
 * is remembered under `rejected/<id>` so that messages under it are refused without a new warning.
 * Every new pending identity (one that differs from the pinned one and from the pending one) is
 * reported: nothing replaces the identity the user is comparing without a new warning. Without an
 * approval step the new key is pinned at once, and reported.
 */
import { type PublicIdentity, decodePublicIdentity, sameIdentityKeys } from '../crypto/identity.js';
import { CryptoError, ErrorCode } from '../errors.js';
import type { StateStore } from './stores.js';

/** The client option that decides how a key change is handled; read when needed, as the client always did. */
export interface TrustOptions {
  requireApprovalOnIdentityChange?: boolean | undefined;
}

/** State-store changes: a value is written, `null` deletes the key. */
type Change = [string, Uint8Array | null];

const IDENTITY_BYTES = 194;
/** Rejected identities remembered per contact (oldest forgotten first). */
const REJECTED_KEPT = 16;

/**
 * What an identity seen for a contact means: `trusted` (the pinned one, or pinned now: first use, or
 * approval is off), `pending` (another one, awaiting the user's decision) or `rejected` (one the user
 * rejected, seen in a message: refused).
 */
export type Verdict = 'trusted' | 'pending' | 'rejected';

/** Where an identity was seen: a bundle the user's own send fetched, or a received message. */
export type SeenIn = 'bundle' | 'message';

/** Pinned, pending and rejected identities of our contacts. */
export class ContactTrust {
  private readonly pinned = new Map<string, Uint8Array>();
  /** Contacts whose identity changed and is not approved yet, with the new identity (194 bytes). */
  private readonly changed = new Map<string, Uint8Array>();
  private readonly rejected = new Map<string, Uint8Array[]>();

  constructor(
    private readonly opts: TrustOptions,
    /**
     * Told (synchronously, once the new key is recorded in memory) of every new pending identity of a
     * contact, and of a new key pinned at once when approval is off.
     */
    private readonly identityChanged: (userId: string, identity: Uint8Array) => void,
  ) {}

  /** True unless the client was told not to wait for the user (`requireApprovalOnIdentityChange: false`). */
  get requiresApproval(): boolean {
    return this.opts.requireApprovalOnIdentityChange !== false;
  }

  /** Loads pinned, pending and rejected identities (replacing what is in memory). */
  async load(store: StateStore): Promise<void> {
    this.pinned.clear();
    this.changed.clear();
    this.rejected.clear();
    for (const key of await store.keys('contact/')) {
      const bytes = await store.get(key);
      if (bytes) this.pinned.set(key.slice(8), bytes);
    }
    for (const key of await store.keys('changed/')) {
      const bytes = await store.get(key);
      if (bytes?.length === IDENTITY_BYTES) this.changed.set(key.slice(8), bytes);
    }
    for (const key of await store.keys('rejected/')) {
      const bytes = await store.get(key);
      if (!bytes || bytes.length % IDENTITY_BYTES !== 0) continue;
      const list: Uint8Array[] = [];
      for (let i = 0; i < bytes.length; i += IDENTITY_BYTES) list.push(bytes.slice(i, i + IDENTITY_BYTES));
      this.rejected.set(key.slice(9), list);
    }
  }

  /** Every contact whose identity we have pinned. */
  contacts(): string[] {
    return [...this.pinned.keys()];
  }

  /** The pinned identity of a contact, if we have seen one. */
  pinnedIdentity(userId: string): Uint8Array | undefined {
    return this.pinned.get(userId);
  }

  /** The changed identity of a contact awaiting approval, if any. */
  pendingIdentity(userId: string): Uint8Array | undefined {
    return this.changed.get(userId);
  }

  /** True while a contact's key change awaits the approval the client requires: sending is refused. */
  blocks(userId: string): boolean {
    return this.changed.has(userId) && this.requiresApproval;
  }

  /** True if `identity` has the keys of the contact's pinned identity (or nothing is pinned yet). */
  isPinned(userId: string, identity: PublicIdentity): boolean {
    const known = this.pinned.get(userId);
    return !known || sameIdentityKeys(decodePublicIdentity(known), identity);
  }

  /** Throws IDENTITY_CHANGED while blocks(userId). */
  checkSendable(userId: string): void {
    if (this.blocks(userId)) {
      throw new CryptoError(
        ErrorCode.IDENTITY_CHANGED,
        `${userId}'s security key changed; confirm it before sending`,
      );
    }
  }

  /**
   * Pins a contact's identity on first use; records and reports a change. Returns what the identity
   * means and the state changes to write. A rejected identity seen in a message changes nothing; seen
   * in a bundle (the user is sending) it becomes pending again, so the user can reconsider.
   */
  pin(userId: string, identityBytes: Uint8Array, seenIn: SeenIn): { verdict: Verdict; changes: Change[] } {
    const known = this.pinned.get(userId);
    if (!known) {
      this.pinned.set(userId, identityBytes);
      return { verdict: 'trusted', changes: [[`contact/${userId}`, identityBytes]] };
    }
    const identity = decodePublicIdentity(identityBytes);
    if (sameIdentityKeys(decodePublicIdentity(known), identity)) return { verdict: 'trusted', changes: [] };
    if (!this.requiresApproval) {
      // Without an approval step the new key is pinned at once; the event still warns the user.
      this.pinned.set(userId, identityBytes);
      this.identityChanged(userId, identityBytes);
      return { verdict: 'trusted', changes: [[`contact/${userId}`, identityBytes]] };
    }
    const pending = this.changed.get(userId);
    if (pending && sameIdentityKeys(decodePublicIdentity(pending), identity))
      return { verdict: 'pending', changes: [] };
    if (seenIn === 'message' && this.wasRejected(userId, identity))
      return { verdict: 'rejected', changes: [] };
    this.changed.set(userId, identityBytes);
    // Told now, synchronously, before the caller handles whatever revealed the new key: a listener that
    // records the change (the app's "security key changed" line) does so first (issue 7). Every new
    // pending key is told, so the safety number the user compares is never silently replaced (issue 8).
    this.identityChanged(userId, identityBytes);
    return { verdict: 'pending', changes: [[`changed/${userId}`, identityBytes]] };
  }

  /** Pins a contact's pending identity (the caller checked the user's safety number); returns the changes. */
  approve(userId: string): Change[] {
    const bytes = this.changed.get(userId);
    if (!bytes) return [];
    this.pinned.set(userId, bytes);
    this.changed.delete(userId);
    const changes: Change[] = [
      [`contact/${userId}`, bytes],
      [`changed/${userId}`, null],
    ];
    // An identity rejected once and accepted now (seen again in a bundle) is no longer refused.
    const identity = decodePublicIdentity(bytes);
    const rejected = this.rejected.get(userId) ?? [];
    const rest = rejected.filter((b) => !sameIdentityKeys(decodePublicIdentity(b), identity));
    if (rest.length !== rejected.length) changes.push(this.setRejected(userId, rest));
    return changes;
  }

  /** Drops a contact's pending identity and remembers it as rejected; the pin stays. Returns the changes. */
  reject(userId: string): Change[] {
    const bytes = this.changed.get(userId);
    if (!bytes) return [];
    this.changed.delete(userId);
    const list = [...(this.rejected.get(userId) ?? []), bytes].slice(-REJECTED_KEPT);
    return [[`changed/${userId}`, null], this.setRejected(userId, list)];
  }

  private setRejected(userId: string, list: Uint8Array[]): Change {
    if (list.length === 0) {
      this.rejected.delete(userId);
      return [`rejected/${userId}`, null];
    }
    this.rejected.set(userId, list);
    const joined = new Uint8Array(list.length * IDENTITY_BYTES);
    list.forEach((b, i) => joined.set(b, i * IDENTITY_BYTES));
    return [`rejected/${userId}`, joined];
  }

  private wasRejected(userId: string, identity: PublicIdentity): boolean {
    return (this.rejected.get(userId) ?? []).some((b) => sameIdentityKeys(decodePublicIdentity(b), identity));
  }
}
