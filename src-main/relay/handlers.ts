/**
 * Requests of an authenticated connection. The sender is always the connection's user, never a
 * field of the frame. A handler throws RelayError to refuse; replies are released after the commit
 * of the batch holding the request's writes, so every `ok` and `ack` describes committed state (a
 * message is 'sent' once stored, whether its recipient is online or not; see docs/PROTOCOL.md).
 */
import { equalBytes } from '../core/encoding.js';
import { decodePublicIdentity, encodePublicIdentity } from '../core/crypto/identity.js';
import { VerifyKey, importPublicKey } from '../core/crypto/primitives.js';
import { deleteAccountSignatureInput } from '../core/protocol/login.js';
import { decodePreKeyBundle, encodePreKeyBundle, type PreKeyBundle } from '../core/crypto/x3dh.js';
import {
  MAX_PREKEYS_STORED,
  RelayErrorCode,
  b64,
  unb64,
  type ClientFrame,
  type RelayFrame,
} from '../core/protocol/wire.js';
import { RelayError, type RelayContext } from './context.js';
import { Throttle, mailboxHasRoom } from './limits.js';
import type { Peer } from './router.js';
import type { StoredPreKey } from './relay-store.js';

/** Below this many stored one-time prekeys, an online owner is told to upload more. */
const PREKEYS_LOW = 10;

/** An authenticated connection, as the handlers see it. */
export interface Client extends Peer {
  /**
   * Sends `reply()` after the current batch commits (or an error for `rid` if it failed), then calls
   * `after` with that failure, if any.
   */
  respond(
    rid: number | undefined,
    reply: () => RelayFrame | undefined,
    after?: (err?: unknown) => void,
  ): void;
  /** Stops processing this connection's frames (the account is gone); the socket closes later. */
  retire(): void;
  /** A fresh nonce for a deletion proof; it replaces any earlier one of this connection. */
  newDeletionNonce(): Uint8Array;
  /** The deletion nonce, used up: the next call returns undefined until a new challenge. */
  takeDeletionNonce(): Uint8Array | undefined;
}

type Request = Exclude<ClientFrame, { t: 'hello' } | { t: 'auth' }>;

const unknownUser = (userId: string): RelayError =>
  new RelayError(RelayErrorCode.UNKNOWN_USER, `There is no user "${userId}".`);

/** Handles one request frame of an authenticated client. */
export function handleRequest(ctx: RelayContext, client: Client, f: Request): void {
  const me = client.userId;
  const now = ctx.options.now();
  switch (f.t) {
    case 'send': {
      if (!ctx.users.has(f.to)) throw unknownUser(f.to);
      if (!hasRoom(ctx, f.to, f.body.length))
        throw new RelayError(
          RelayErrorCode.MAILBOX_FULL,
          `${f.to}'s mailbox on this relay is full: the message was not sent. Try again once ${f.to} has read some.`,
        );
      ctx.router.route(f.to, { kind: 'direct', from: me, id: f.id, body: f.body }, now);
      client.respond(f.rid, () => ({ t: 'ack', rid: f.rid, id: f.id, to: f.to, state: 'sent' }));
      return;
    }
    case 'groupSend': {
      // Uploaded once, one delivery per other full member of the verified roster.
      const members = ctx.groups.membersFor(f.group, me);
      // Fan-out budget per sender (bytes × recipients a minute): over it, the sender waits.
      const cost = f.body.length * Math.max(1, members.length - 1);
      if (!ctx.limits.fanout.take(me, cost)) throw new Throttle(ctx.limits.fanout.waitMs(me, cost));
      const skipped: string[] = [];
      for (const m of members) {
        if (m === me) continue;
        // A full mailbox misses this message (refusing the whole send would let one member who never
        // comes back silence the group); the sender is told who.
        if (!hasRoom(ctx, m, f.body.length)) skipped.push(m);
        else ctx.router.route(m, { kind: 'group', from: me, id: f.id, group: f.group, body: f.body }, now);
      }
      client.respond(f.rid, () => ({
        t: 'ack',
        rid: f.rid,
        id: f.id,
        group: f.group,
        state: 'sent',
        ...(skipped.length > 0 ? { skipped } : {}),
      }));
      return;
    }
    case 'received':
      ctx.router.received(client, f.seq);
      return;
    case 'receipt': {
      if (!ctx.users.has(f.to)) throw unknownUser(f.to);
      // Receipts count against the mailbox quota like messages; to a full mailbox one is dropped
      // (it has no rid to refuse: best-effort metadata, docs/PROTOCOL.md "Receipts").
      if (!hasRoom(ctx, f.to, 0)) return;
      ctx.router.route(f.to, { kind: 'receipt', from: me, id: f.id, group: f.group }, now);
      return;
    }
    case 'publishPreKeys':
      return publishPreKeys(ctx, client, f);
    case 'getBundle':
      return getBundle(ctx, client, f);
    case 'identities': {
      // As cheap as a bundle per 10 ids, from the same budget: over it, the requester waits.
      const cost = Math.ceil(f.userIds.length / 10);
      if (!ctx.limits.bundles.take(me, cost)) throw new Throttle(ctx.limits.bundles.waitMs(me, cost));
      // Registered users only, each once; an id missing from the answer is not registered.
      const identities: { userId: string; identity: string }[] = [];
      for (const userId of new Set(f.userIds)) {
        const identity = ctx.users.has(userId) ? ctx.store.identityOf(userId) : undefined;
        if (identity) identities.push({ userId, identity: b64(identity) });
      }
      client.respond(f.rid, () => ({ t: 'ok', rid: f.rid, identities }));
      return;
    }
    case 'groupAppend': {
      const head = ctx.groups.append(me, f.group, unb64(f.entry));
      client.respond(f.rid, () => ({ t: 'ok', rid: f.rid, ...head }));
      return;
    }
    case 'groupLog': {
      const page = ctx.groups.readLog(f.group, me, f.from, f.limit);
      client.respond(f.rid, () => ({ t: 'ok', rid: f.rid, group: f.group, ...page }));
      return;
    }
    case 'deleteAccountChallenge': {
      const nonce = b64(client.newDeletionNonce());
      client.respond(f.rid, () => ({ t: 'ok', rid: f.rid, nonce }));
      return;
    }
    case 'deleteAccount':
      return deleteAccount(ctx, client, f);
  }
}

/** True when one more item of `bytes` fits `recipient`'s mailbox quota. */
function hasRoom(ctx: RelayContext, recipient: string, bytes: number): boolean {
  return mailboxHasRoom(ctx.queue, ctx.limits.options, recipient, bytes);
}

function invalidBundle(message: string): RelayError {
  return new RelayError(RelayErrorCode.INVALID_BUNDLE, message);
}

function publishPreKeys(
  ctx: RelayContext,
  client: Client,
  f: Extract<Request, { t: 'publishPreKeys' }>,
): void {
  const me = client.userId;
  const bytes = unb64(f.bundle);
  let bundle: PreKeyBundle;
  try {
    bundle = decodePreKeyBundle(bytes); // verifies the keys and the signed prekey signature
  } catch {
    throw invalidBundle('The bundle does not decode or its signed prekey signature does not verify.');
  }
  if (bundle.oneTimePreKey)
    throw invalidBundle('The bundle must not contain a one-time prekey: send those in oneTimePreKeys.');
  if (bundle.userId !== me) throw invalidBundle(`The bundle is for "${bundle.userId}", not for you.`);
  const registered = ctx.store.identityOf(me);
  if (!registered || !equalBytes(encodePublicIdentity(bundle.identity), registered))
    throw invalidBundle('The identity in the bundle is not the identity you authenticated with.');

  const keys: StoredPreKey[] = [];
  for (const k of f.oneTimePreKeys) {
    let key: Uint8Array;
    try {
      key = importPublicKey(unb64(k.key));
    } catch {
      throw invalidBundle(`One-time prekey ${k.id} is not a valid P-256 public key.`);
    }
    keys.push({ id: k.id, key });
  }
  const stored = ctx.store.preKeyCount(me);
  const fresh = new Set(keys.map((k) => k.id).filter((id) => !ctx.store.hasPreKey(me, id))).size;
  if (stored + fresh > MAX_PREKEYS_STORED)
    throw new RelayError(
      RelayErrorCode.QUOTA,
      `At most ${MAX_PREKEYS_STORED} one-time prekeys are kept per user; ${stored} are stored and ${fresh} more were sent.`,
    );
  ctx.store.putPreKeys(me, bytes, keys);
  client.respond(f.rid, () => ({ t: 'ok', rid: f.rid, oneTimePreKeyCount: stored + fresh }));
}

function getBundle(ctx: RelayContext, client: Client, f: Extract<Request, { t: 'getBundle' }>): void {
  const me = client.userId;
  const owner = f.userId;
  // Bundle requests per requester: over the budget, the requester waits (nothing is refused).
  if (!ctx.limits.bundles.take(me)) throw new Throttle(ctx.limits.bundles.waitMs(me));
  const stored = ctx.users.has(owner) ? ctx.store.bundleOf(owner) : undefined;
  if (!stored)
    throw new RelayError(RelayErrorCode.UNKNOWN_USER, `"${owner}" is not registered or has no prekeys yet.`);
  const base = decodePreKeyBundle(stored);
  const count = ctx.store.preKeyCount(owner);
  // One-time prekeys handed out per owner and per requester: beyond either budget the bundle comes
  // without one (X3DH still works, from the signed prekey), so nobody can drain a user's stock fast.
  const mayTake =
    ctx.limits.preKeysOfTarget.waitMs(owner) === 0 && ctx.limits.preKeysForRequester.waitMs(me) === 0;
  const opk = mayTake ? ctx.store.firstPreKey(owner) : undefined;
  if (opk) {
    ctx.limits.preKeysOfTarget.take(owner);
    ctx.limits.preKeysForRequester.take(me);
  }
  // Each one-time prekey is handed out once: deleted in the batch that the reply waits for.
  if (opk) ctx.store.deletePreKey(owner, opk.id);
  const remaining = opk ? count - 1 : count;
  const bundle = b64(
    encodePreKeyBundle({ ...base, oneTimePreKey: opk && { id: opk.id, publicKey: opk.key } }),
  );
  client.respond(f.rid, () => {
    if (remaining < PREKEYS_LOW)
      ctx.router
        .peer(owner)
        ?.send(JSON.stringify({ t: 'preKeysLow', count: remaining } satisfies RelayFrame));
    return { t: 'ok', rid: f.rid, bundle };
  });
}

/**
 * Deletes the account, given a fresh proof: the user's identity signed this relay's key, the user id and
 * the nonce of this connection's latest deletion challenge (used up by this attempt, valid or not). A
 * relay that logged in by replaying a login, or anyone replaying an earlier deletion, has no such proof.
 */
function deleteAccount(ctx: RelayContext, client: Client, f: Extract<Request, { t: 'deleteAccount' }>): void {
  const me = client.userId;
  const nonce = client.takeDeletionNonce();
  if (!nonce)
    throw new RelayError(
      RelayErrorCode.BAD_PROOF,
      'Ask for a deletion challenge first (deleteAccountChallenge), then sign it: each one is good for one attempt.',
    );
  const identity = ctx.store.identityOf(me);
  const input = deleteAccountSignatureInput(ctx.relayKey.publicKey, me, nonce);
  if (
    !identity ||
    !new VerifyKey(decodePublicIdentity(identity).signingKey).verify(input, unb64(f.signature))
  )
    throw new RelayError(
      RelayErrorCode.BAD_PROOF,
      "The deletion is not signed by your identity over this relay's key and your latest deletion challenge.",
    );
  removeAccount(ctx, client, f.rid);
}

function removeAccount(ctx: RelayContext, client: Client, rid: number): void {
  const me = client.userId;
  client.retire();
  // Gone from memory at once, so that nothing is routed to the id meanwhile; told to others only
  // once stored.
  ctx.users.delete(me);
  ctx.store.deleteUser(me);
  ctx.queue.deleteRecipient(me);
  // Rosters are signed and keep the id, but nothing more is routed to it (nor to whoever registers it next).
  ctx.groups.refreshUser(me);
  ctx.router.detach(client);
  // After the reply: the `ok`, or the refusal when the deletion could not be stored.
  client.respond(
    rid,
    () => ({ t: 'ok', rid }),
    (err) => {
      if (err !== undefined) {
        // Not deleted: the account is as stored. Its user, told why, logs in again on a new connection.
        ctx.users.add(me);
        ctx.groups.refreshUser(me);
        client.close(1013, 'storage unavailable');
        return;
      }
      ctx.router.broadcast(
        JSON.stringify({ t: 'event', event: { type: 'userDeleted', userId: me } } satisfies RelayFrame),
        client,
      );
      ctx.log.info('account_deleted', `deleted the account of ${client.label}`, {
        conn: client.label,
        users: ctx.users.size,
      });
      client.close(1000, 'account deleted');
    },
  );
}
