/**
 * What the relay keeps besides its deliveries (those are the DeliveryQueue's, queue/): registered users
 * and their identities, prekeys, group logs with their verified states, and the delivery seq numbering.
 * The relay's logic (connection handlers, router, groups) sees only this interface; the SQLite store
 * (store.ts) implements it today, and a shared store for a multi-node relay can implement it later
 * without touching them.
 *
 * The contract every implementation keeps:
 * - Writes are applied in call order. A read sees every earlier write.
 * - `afterCommit(done)` calls `done` once every write before it is durable, or with the error that kept
 *   it from being so (then none of that batch's writes happened). Replies that promise durability (`ok`,
 *   `ack`) wait for it; `done` callbacks run in registration order.
 * - `nextSeq` never returns a number twice, across restarts and crashes included.
 */
/** A stored one-time prekey. */
export interface StoredPreKey {
  readonly id: number;
  readonly key: Uint8Array;
}

export interface RelayStore {
  // -- users and prekeys
  insertUser(id: string, identity: Uint8Array, now: number): void;
  /** Removes a user with their bundle and prekeys; group logs keep naming them. */
  deleteUser(id: string): void;
  identityOf(userId: string): Uint8Array | undefined;
  userIds(): string[];
  /** Replaces the user's signed bundle and adds one-time prekeys. */
  putPreKeys(userId: string, bundle: Uint8Array, oneTime: readonly StoredPreKey[]): void;
  deletePreKey(userId: string, keyId: number): void;
  bundleOf(userId: string): Uint8Array | undefined;
  hasPreKey(userId: string, keyId: number): boolean;
  preKeyCount(userId: string): number;
  /** The oldest one-time prekey of a user (the caller deletes it with `deletePreKey`). */
  firstPreKey(userId: string): StoredPreKey | undefined;

  // -- groups
  /** Adds a verified entry to a group's log with the state it leads to, in one write. */
  appendGroupEntry(group: string, epoch: number, entry: Uint8Array, state: Uint8Array): void;
  /** Forgets a deleted group: its log and state. */
  deleteGroupLog(group: string): void;
  /** The verified state of every group (encodeGroupLog bytes). */
  loadGroupStates(): { group: string; state: Uint8Array }[];
  /** One group's stored state (undefined: no such group). */
  groupState(group: string): Uint8Array | undefined;
  /** Up to `limit` entries of a group's log from epoch `from`, in order. */
  groupEntries(group: string, from: number, limit: number): Uint8Array[];

  // -- delivery numbering
  /** The next delivery seq: one increasing numbering for every routed item, never reused. */
  nextSeq(): number;
  /** Seqs continue above `maxSeq` (the delivery queue's highest, read when it opened). */
  seqsAbove(maxSeq: number): void;

  // -- durability and life cycle
  /** Runs `done` once every write so far is durable, or with the error that kept it from being so. */
  afterCommit(done: (err?: unknown) => void): void;
  /** Starts committing what is pending now rather than at the end of this event-loop turn. */
  flush(): void;
  /** A test write while storage is unavailable (storage.ts); throws while it still cannot be written. */
  probe(): void;
  /** Makes every write durable, releases every waiting reply and closes; idempotent. */
  close(): void;
}
