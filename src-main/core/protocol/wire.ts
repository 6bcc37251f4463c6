/**
 * The relay wire protocol (docs/PROTOCOL.md "Wire protocol"): JSON text frames over WebSocket.
 * Binary fields (identities, bundles, ciphertext) are standard base64. Every frame a peer receives is
 * parsed from `unknown` with these schemas before use; shared by the relay and the client.
 */
import * as v from 'valibot';
import { MAX_RELAY_URL_CHARS, isNormalisedRelayUrl } from './login.js';

/**
 * Wire protocol version, sent in `hello`. 2: group membership is a signed log; the login is bound to the
 * relay (its key in the challenge, its key and address in the signed login), deleteAccount needs a fresh
 * signature, user ids are lower case.
 */
export const WIRE_VERSION = 2;

/** Largest WebSocket message either side accepts (ws `maxPayload`). */
export const MAX_FRAME_BYTES = 256 * 1024;
/** Largest base64 body (ciphertext) in a send frame: leaves room for the envelope. */
export const MAX_BODY_B64 = 240 * 1024;
/** One-time prekeys uploaded per frame at most, and kept per user at most. */
export const MAX_PREKEYS_PER_FRAME = 100;
export const MAX_PREKEYS_STORED = 500;
/** Largest group membership entry (base64), and most entries in one `groupLog` answer. */
export const MAX_ENTRY_B64 = 1024;
export const MAX_LOG_PAGE = 100;
/** User ids per `identities` request. */
export const MAX_IDENTITIES_PER_FRAME = 100;

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** User and group ids: 1-64 characters of letters, digits, '.', '_', '-', starting alphanumeric. */
export const Name = v.pipe(
  v.string(),
  v.regex(ID_RE, 'must be 1-64 of A-Z a-z 0-9 . _ - (starting alphanumeric)'),
);
/**
 * User ids on the wire: the canonical, lower-case form only (docs/PROTOCOL.md "Identifiers"). Group
 * names stay `Name`, case-sensitive.
 */
export const UserId = v.pipe(
  v.string(),
  v.regex(
    /^[a-z0-9][a-z0-9._-]{0,63}$/,
    'must be a lower-case user id: 1-64 of a-z 0-9 . _ - (starting with a letter or digit)',
  ),
);
/** Message ids are chosen by the sender (random UUIDs); recipients deduplicate by (sender, id). */
export const MessageId = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{8,64}$/, 'bad message id'));
// Canonical padded base64 (RFC 4648 section 4): only alphabet characters, a length that is a multiple of
// 4, and at most two '=' at the very end. Every message body passes through here on the relay, so the
// check is a search for one character outside the alphabet: V8 runs that as a fast scan, while an
// anchored /^[...]*={0,2}$/ costs about 4 ns a character on a fresh string (7x more, measured on
// JSON-parsed 1 KiB bodies), and valibot's general base64 regex more again.
const NOT_BASE64 = /[^A-Za-z0-9+/=]/;
function isBase64(s: string): boolean {
  if (s.length % 4 !== 0 || NOT_BASE64.test(s)) return false;
  const pad = s.indexOf('=');
  if (pad === -1) return true;
  return pad === s.length - 1 || (pad === s.length - 2 && s.charCodeAt(s.length - 1) === 0x3d);
}
const B64 = (max: number) =>
  v.pipe(v.string(), v.minLength(1, 'must not be empty'), v.maxLength(max), v.check(isBase64, 'not base64'));
const Rid = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(Number.MAX_SAFE_INTEGER));
const Seq = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(Number.MAX_SAFE_INTEGER));

/** Frames a client sends to the relay. */
export const ClientFrame = v.variant('t', [
  v.strictObject({ t: v.literal('hello'), v: v.number(), userId: UserId }),
  v.strictObject({
    t: v.literal('auth'),
    identity: B64(300),
    signature: B64(100),
    // The address the client dialled, normalised (login.ts): part of the signed login.
    relayUrl: v.pipe(
      v.string(),
      v.maxLength(MAX_RELAY_URL_CHARS),
      v.check(isNormalisedRelayUrl, 'must be a normalised ws:// or wss:// URL'),
    ),
  }),
  v.strictObject({
    t: v.literal('publishPreKeys'),
    rid: Rid,
    bundle: B64(1024),
    oneTimePreKeys: v.pipe(
      v.array(
        v.strictObject({
          id: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(0xfffffffe)),
          key: B64(100),
        }),
      ),
      v.maxLength(MAX_PREKEYS_PER_FRAME),
    ),
  }),
  v.strictObject({ t: v.literal('getBundle'), rid: Rid, userId: UserId }),
  // The identities registered now for the contacts a client knows, to notice who re-registered while it
  // was offline (userDeleted/userCreated are live only).
  v.strictObject({
    t: v.literal('identities'),
    rid: Rid,
    userIds: v.pipe(v.array(UserId), v.minLength(1), v.maxLength(MAX_IDENTITIES_PER_FRAME)),
  }),
  v.strictObject({ t: v.literal('send'), rid: Rid, to: UserId, id: MessageId, body: B64(MAX_BODY_B64) }),
  v.strictObject({
    t: v.literal('groupSend'),
    rid: Rid,
    group: Name,
    id: MessageId,
    body: B64(MAX_BODY_B64),
  }),
  // Group membership is a signed log (docs/PROTOCOL.md "Group membership"): a client appends its own
  // entries and reads the log in pages; the relay checks each entry as every member will.
  v.strictObject({ t: v.literal('groupAppend'), rid: Rid, group: Name, entry: B64(MAX_ENTRY_B64) }),
  v.strictObject({
    t: v.literal('groupLog'),
    rid: Rid,
    group: Name,
    from: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0xffffffff)),
    limit: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(MAX_LOG_PAGE))),
  }),
  v.strictObject({ t: v.literal('received'), seq: Seq }),
  v.strictObject({ t: v.literal('receipt'), to: UserId, id: MessageId, group: v.optional(Name) }),
  // Deleting the account takes a fresh proof: a nonce from the relay, then a signature over it.
  v.strictObject({ t: v.literal('deleteAccountChallenge'), rid: Rid }),
  v.strictObject({ t: v.literal('deleteAccount'), rid: Rid, signature: B64(100) }),
]);
export type ClientFrame = v.InferOutput<typeof ClientFrame>;

/** The `identities` of the relay's `ok` to an `identities` request: registered users only, each once. */
export const IdentitiesAnswer = v.pipe(
  v.array(v.strictObject({ userId: UserId, identity: B64(300) })),
  v.maxLength(MAX_IDENTITIES_PER_FRAME),
);

/** Group and user events. Group events are durable (queued like messages); user events are live only. */
export const RelayEvent = v.variant('type', [
  v.strictObject({ type: v.literal('userCreated'), userId: UserId }),
  v.strictObject({ type: v.literal('userDeleted'), userId: UserId }),
  // A group's log has a new head: read it (durable; a newer one replaces an older one still queued).
  v.strictObject({
    type: v.literal('groupHead'),
    group: Name,
    epoch: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0xffffffff)),
    head: B64(44),
  }),
  // A new entry of a group's log, to those it concerns (durable).
  v.strictObject({
    type: v.literal('groupEntry'),
    group: Name,
    epoch: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0xffffffff)),
    entry: B64(MAX_ENTRY_B64),
  }),
]);
export type RelayEvent = v.InferOutput<typeof RelayEvent>;

/** A group the user is on the roster of, as `ready` lists it: only its head (the log is fetched in pages). */
const GroupHead = v.strictObject({
  group: Name,
  epoch: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0xffffffff)),
  head: B64(44),
});

/** Frames the relay sends to a client. */
export const RelayFrame = v.variant('t', [
  // relayKey: the relay's long-term public key; signature: by that key (login.ts challengeSignatureInput).
  v.strictObject({ t: v.literal('challenge'), nonce: B64(64), relayKey: B64(100), signature: B64(100) }),
  v.strictObject({
    t: v.literal('ready'),
    userId: UserId,
    registered: v.boolean(),
    oneTimePreKeyCount: v.number(),
    groups: v.array(GroupHead),
  }),
  // Loose: an ok frame carries the request's result fields (bundle, members, ...).
  v.looseObject({ t: v.literal('ok'), rid: Rid }),
  v.strictObject({ t: v.literal('error'), rid: v.optional(Rid), code: v.string(), message: v.string() }),
  v.strictObject({
    t: v.literal('ack'),
    rid: Rid,
    id: MessageId,
    to: v.optional(UserId),
    group: v.optional(Name),
    state: v.literal('sent'),
    // groupSend only: members whose mailbox was full, who will not get this message.
    skipped: v.optional(v.array(UserId)),
  }),
  v.strictObject({ t: v.literal('preKeysLow'), count: v.number() }),
  v.strictObject({
    t: v.literal('deliver'),
    seq: Seq,
    kind: v.picklist(['direct', 'group', 'receipt', 'event']),
    from: v.optional(UserId),
    id: v.optional(MessageId),
    group: v.optional(Name),
    body: v.optional(B64(MAX_BODY_B64)),
    event: v.optional(RelayEvent),
    ts: v.number(),
  }),
  v.strictObject({ t: v.literal('event'), event: RelayEvent }),
]);
export type RelayFrame = v.InferOutput<typeof RelayFrame>;

/** Relay error codes (the `code` of an error frame). Stable. */
export const RelayErrorCode = {
  BAD_FRAME: 'BAD_FRAME',
  UNSUPPORTED_VERSION: 'UNSUPPORTED_VERSION',
  NOT_AUTHENTICATED: 'NOT_AUTHENTICATED',
  AUTH_FAILED: 'AUTH_FAILED',
  /** deleteAccount without a valid signature over this connection's latest deletion challenge. */
  BAD_PROOF: 'BAD_PROOF',
  INVALID_BUNDLE: 'INVALID_BUNDLE',
  UNKNOWN_USER: 'UNKNOWN_USER',
  UNKNOWN_GROUP: 'UNKNOWN_GROUP',
  GROUP_EXISTS: 'GROUP_EXISTS',
  /** A group entry that does not decode, verify, or fit: its signature, format or identities. */
  BAD_ENTRY: 'BAD_ENTRY',
  /** A group entry made on an older head: read the log from the current epoch and make it again. */
  STALE_ENTRY: 'STALE_ENTRY',
  /** The group's roster is at the relay's limit. */
  GROUP_FULL: 'GROUP_FULL',
  /** The recipient's mailbox on this relay is full (limits.queuedItemsPerRecipient / BytesPerRecipient). */
  MAILBOX_FULL: 'MAILBOX_FULL',
  NOT_A_MEMBER: 'NOT_A_MEMBER',
  FORBIDDEN: 'FORBIDDEN',
  RATE_LIMITED: 'RATE_LIMITED',
  QUOTA: 'QUOTA',
  /**
   * The relay cannot write its storage (a full disk, a read-only directory): the request was not
   * stored. Temporary: the client keeps the message and sends it again once the relay recovers.
   */
  STORAGE_UNAVAILABLE: 'STORAGE_UNAVAILABLE',
  INTERNAL: 'INTERNAL',
} as const;
export type RelayErrorCode = (typeof RelayErrorCode)[keyof typeof RelayErrorCode];

/**
 * Parses a frame of a `t`-discriminated union by looking its `t` up first, so the matching schema
 * alone runs (a hot path on the relay: every frame of every connection).
 */
export function parseFrameByType<S extends v.VariantSchema<'t', v.VariantOptions<'t'>, undefined>>(
  schema: S,
  data: string,
): { ok: true; value: v.InferOutput<S> } | { ok: false; error: string } {
  const json = parseJson(data);
  if (json === NOT_JSON) return { ok: false, error: 'frame is not JSON' };
  const t = typeof json === 'object' && json !== null ? (json as { t?: unknown }).t : undefined;
  const option = typeof t === 'string' ? optionsByType(schema).get(t) : undefined;
  if (!option)
    return { ok: false, error: typeof t === 'string' ? `unknown frame type "${t}"` : 't: missing' };
  const r = v.safeParse(option, json);
  if (r.success) return { ok: true, value: r.output as v.InferOutput<S> };
  return { ok: false, error: describeIssue(r.issues[0]) };
}

const optionIndex = new WeakMap<object, Map<string, v.GenericSchema>>();
/** The options of a `t` variant indexed by their literal `t` (built once per schema). */
function optionsByType(schema: { options: readonly unknown[] }): Map<string, v.GenericSchema> {
  let index = optionIndex.get(schema);
  if (!index) {
    index = new Map();
    for (const o of schema.options) {
      const entries = (o as { entries?: { t?: { literal?: unknown } } }).entries;
      if (typeof entries?.t?.literal === 'string') index.set(entries.t.literal, o as v.GenericSchema);
    }
    optionIndex.set(schema, index);
  }
  return index;
}

const NOT_JSON = Symbol('not JSON');
function parseJson(data: string): unknown {
  try {
    return JSON.parse(data) as unknown;
  } catch {
    return NOT_JSON;
  }
}

function describeIssue(issue: v.BaseIssue<unknown>): string {
  const path = issue.path?.map((p) => String(p.key)).join('.') ?? '';
  return `${path ? `${path}: ` : ''}${issue.message}`;
}

/** Parses one frame with `schema`; returns the value or a readable description of the problem. */
export function parseFrame<S extends v.GenericSchema>(
  schema: S,
  data: string,
): { ok: true; value: v.InferOutput<S> } | { ok: false; error: string } {
  const json = parseJson(data);
  if (json === NOT_JSON) return { ok: false, error: 'frame is not JSON' };
  const r = v.safeParse(schema, json);
  if (r.success) return { ok: true, value: r.output };
  return { ok: false, error: describeIssue(r.issues[0]) };
}

export const b64 = (u: Uint8Array): string =>
  Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64');
export const unb64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
