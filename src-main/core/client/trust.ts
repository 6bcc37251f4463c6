/**
 * Trust on first use of contacts' identity keys. The first identity seen for a user id (in a prekey
 * bundle or a message) is pinned under `contact/<id>`. A different one later raises 'identityChanged';
 * when the client requires approval it is kept aside under `changed/<id>` (the 194-byte public
 * identity) and sending to that contact is refused until the user approves it. Without an approval
 * step the new key is pinned at once.
 */
import { decodePublicIdentity, sameIdentityKeys } from '../crypto/identity.js';
import { CryptoError, ErrorCode } from '../errors.js';
import type { StateStore } from './stores.js';

/** The client option that decides how a key change is handled; read when needed, as the client always did. */
export interface TrustOptions {
  requireApprovalOnIdentityChange?: boolean | undefined;
}

/** State-store changes: a value is written, `null` deletes the key. */
type Change = [string, Uint8Array | null];

/** Pinned and pending identities of our contacts. */
export class ContactTrust {
  private readonly pinned = new Map<string, Uint8Array>();
  /** Contacts whose identity changed and is not approved yet, with the new identity (194 bytes). */
  private readonly changed = new Map<string, Uint8Array>();

  constructor(
    private readonly opts: TrustOptions,
    /** Told (synchronously, once the new key is recorded in memory) when a contact's identity first differs from the pinned one. */
    private readonly identityChanged: (userId: string) => void,
  ) {}

  /** Loads pinned and pending identities. */
  async load(store: StateStore): Promise<void> {
    for (const key of await store.keys('contact/')) {
      const bytes = await store.get(key);
      if (bytes) this.pinned.set(key.slice(8), bytes);
    }
    for (const key of await store.keys('changed/')) {
      const bytes = await store.get(key);
      if (bytes?.length === 194) this.changed.set(key.slice(8), bytes);
    }
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
    return this.changed.has(userId) && Boolean(this.opts.requireApprovalOnIdentityChange);
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

  /** Pins a contact's identity on first use; flags a change. Returns state changes to write. */
  pin(userId: string, identityBytes: Uint8Array): Change[] {
    const known = this.pinned.get(userId);
    if (!known) {
      this.pinned.set(userId, identityBytes);
      return [[`contact/${userId}`, identityBytes]];
    }
    if (sameIdentityKeys(decodePublicIdentity(known), decodePublicIdentity(identityBytes))) return [];
    const first = !this.changed.has(userId);
    let changes: Change[];
    if (this.opts.requireApprovalOnIdentityChange) {
      this.changed.set(userId, identityBytes);
      changes = [[`changed/${userId}`, identityBytes]];
    } else {
      // Without an approval step the new key is pinned at once; the event still warns the user.
      this.pinned.set(userId, identityBytes);
      changes = [[`contact/${userId}`, identityBytes]];
    }
    // Told now, synchronously, before the caller emits whatever revealed the new key: a listener that
    // records the change (the app's "security key changed" line) does so before the message from the
    // new key arrives, so the warning comes first in the conversation (issue 7).
    if (first) this.identityChanged(userId);
    return changes;
  }

  /** Pins a contact's pending new identity (the user confirmed it); returns the changes, or none if nothing was pending. */
  approve(userId: string): Change[] {
    // The new identity as it was seen (from a bundle or a message), even if no session exists yet.
    const bytes = this.changed.get(userId);
    if (!bytes) return [];
    this.pinned.set(userId, bytes);
    this.changed.delete(userId);
    return [
      [`contact/${userId}`, bytes],
      [`changed/${userId}`, null],
    ];
  }
}
