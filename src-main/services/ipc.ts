/**
 * The IPC trust boundary, transport-free: the Electron shell (ipcMain.handle) and the browser test
 * bridge both call the dispatcher with (sender URL, method, args). The renderer is untrusted: the
 * sender must be the app's own page, the method one of API_METHODS, and every argument object must
 * pass a strict schema before the service sees it. Every failure comes back as data with a stable
 * code and a plain sentence; nothing else (no stack, no internal message) ever leaves.
 */
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import * as v from 'valibot';
import { Name } from '../core/protocol/wire.js';
import { canonicalUserId } from '../core/user-ids.js';
import { API_METHODS, type ApiMethod, type CallResult, type MessengerApi } from '../shared/messenger-api.js';
import { INTERNAL_MESSAGE, ServiceCode, ServiceError } from './errors.js';
import { MAX_PAGE } from './local-store.js';

/** Longest message text accepted from the renderer, in UTF-16 code units. */
export const MAX_TEXT_CHARS = 60_000;
const MAX_URL_CHARS = 2048;

type Service = Omit<MessengerApi, 'onEvent'>;

/** Options of createIpcDispatcher. */
export interface IpcDispatcherOptions {
  /** True if the URL of the calling frame is the app's own page (see isAppUrl). */
  isTrustedSender(url: string): boolean;
  /** Receives unexpected errors for diagnostics (their text never reaches the renderer). */
  onInternalError?: ((method: string, error: unknown) => void) | undefined;
}

/** Handles one call from the renderer. */
export type IpcDispatcher = (senderUrl: string, method: unknown, args: unknown) => Promise<CallResult>;

// --- Argument schemas: each field names its own problem in a sentence ---------------------------

/** A wire Name (user or group id, the relay's own rule) with our sentence as the message. */
const WireName = (what: string) =>
  v.pipe(
    v.string(`The ${what} must be text.`),
    v.check(
      (s) => v.is(Name, s),
      `The ${what} must be 1-64 letters, digits, dots, dashes or underscores, starting with a letter or digit.`,
    ),
  );
/** A user id in any case, folded to its canonical lower-case form (docs/PROTOCOL.md "Identifiers"). */
const UserId = v.pipe(
  WireName('user id'),
  v.transform((s: string) => canonicalUserId(s)),
);
const GroupName = WireName('group name');
const Text = v.pipe(
  v.string('The message must be text.'),
  v.minLength(1, 'The message is empty.'),
  v.maxLength(MAX_TEXT_CHARS, 'The message is longer than 60,000 characters.'),
);
/** A safety number as shown: 60 digits, groups separated by spaces allowed. */
const SafetyDigits = v.pipe(
  v.string('The safety number must be text.'),
  v.maxLength(200, 'The safety number must be the 60 digits shown.'),
  v.check((s) => /^\d{60}$/.test(s.replace(/\s+/g, '')), 'The safety number must be the 60 digits shown.'),
);
const Passphrase = v.pipe(
  v.string('The passphrase must be text.'),
  v.minLength(8, 'The passphrase must have at least 8 characters.'),
  v.maxLength(1024, 'The passphrase must have at most 1,024 characters.'),
);
const Port = v.pipe(
  v.number('The port must be a number.'),
  v.integer('The port must be a whole number.'),
  v.minValue(1024, 'The port must be between 1024 and 65535.'),
  v.maxValue(65535, 'The port must be between 1024 and 65535.'),
);
const RelayUrl = v.pipe(
  v.string('The relay address must be text.'),
  v.maxLength(MAX_URL_CHARS, 'The relay address is too long.'),
  v.check(isRelayUrl, 'The relay address must be a ws:// or wss:// URL, like ws://192.168.1.20:8787.'),
);
const ConversationIdSchema = v.pipe(
  v.string('The conversation id must be text.'),
  v.check((s) => {
    const m = /^(dm|group):(.*)$/s.exec(s);
    return m !== null && v.is(Name, m[2]);
  }, 'The conversation id is not valid.'),
  v.transform((s) => s as `dm:${string}` | `group:${string}`),
);
/** An invite link: sealed://join?relay=...&group=...#secret (the service checks its parts). */
const InviteLink = v.pipe(
  v.string('The invite link must be text.'),
  v.maxLength(MAX_URL_CHARS, 'The invite link is too long.'),
  v.check(
    (s) => s.trim().startsWith('sealed://join?'),
    'This is not a Sealed invite link. It starts with sealed://join.',
  ),
  v.transform((s) => s.trim()),
);
const Policy = v.picklist(['invite-only', 'open', 'link'], 'Who may join must be invite-only, open or link.');
const NewGroupPolicy = v.picklist(
  ['invite-only', 'open'],
  'A new group is invite-only or open (an invite link is made once it exists).',
);
const Role = v.picklist(['admin', 'member'], 'The role must be admin or member.');
const Cursor = v.pipe(
  v.string('The history position must be text.'),
  v.regex(/^[A-Za-z0-9_-]{1,64}$/, 'The history position is not valid.'),
);
const Limit = v.pipe(
  v.number('The page size must be a number.'),
  v.integer('The page size must be a whole number.'),
  v.minValue(1, `The page size must be between 1 and ${MAX_PAGE}.`),
  v.maxValue(MAX_PAGE, `The page size must be between 1 and ${MAX_PAGE}.`),
);

/** Strict object whose own problems (not an object, unknown or missing field) read as sentences. */
function args<const E extends v.ObjectEntries>(entries: E) {
  return v.strictObject(entries, (issue) => {
    if (issue.expected === 'never') {
      const key = issue.path?.at(-1)?.key;
      return `The request has an unexpected field${typeof key === 'string' ? ` "${key.slice(0, 40)}"` : ''}.`;
    }
    if (issue.expected === 'Object') return 'The request must be an object of named fields.';
    return `The request is missing the field ${issue.expected}.`;
  });
}

const NoArgs = v.optional(args({}));

const SCHEMAS = {
  getStatus: NoArgs,
  createProfile: args({ userId: UserId, passphrase: v.optional(Passphrase) }),
  unlock: args({ passphrase: Passphrase }),
  reopenProfile: NoArgs,
  discardProfile: args({ userId: UserId }),
  retryStorage: NoArgs,
  openProfileFolder: NoArgs,
  connect: args({ relayUrl: RelayUrl }),
  acceptRelayKey: args({
    relayUrl: RelayUrl,
    fingerprint: v.pipe(
      v.string('The fingerprint must be text.'),
      v.regex(/^\d{30}$/, 'The fingerprint must be 30 digits.'),
    ),
  }),
  disconnect: NoArgs,
  hostRelay: v.optional(args({ port: v.optional(Port) })),
  stopHostingRelay: NoArgs,
  listDiscoveredRelays: NoArgs,
  listContacts: NoArgs,
  getSafetyNumber: args({ userId: UserId }),
  setVerified: args({ userId: UserId, verified: v.boolean('Verified must be true or false.') }),
  acceptKeyChange: args({ userId: UserId, safetyNumber: SafetyDigits }),
  rejectKeyChange: args({ userId: UserId }),
  listConversations: NoArgs,
  getHistory: args({
    conversationId: ConversationIdSchema,
    before: v.optional(Cursor),
    limit: v.optional(Limit),
  }),
  markRead: args({ conversationId: ConversationIdSchema }),
  openDirect: args({ userId: UserId }),
  sendDirect: args({ to: UserId, text: Text }),
  sendGroup: args({ group: GroupName, text: Text }),
  createGroup: args({ group: GroupName, policy: v.optional(NewGroupPolicy) }),
  joinGroup: args({ group: GroupName }),
  joinGroupWithLink: args({ link: InviteLink }),
  inviteToGroup: args({ group: GroupName, userId: UserId }),
  acceptGroupInvitation: args({ group: GroupName }),
  declineGroupInvitation: args({ group: GroupName }),
  approveJoinRequest: args({ group: GroupName, userId: UserId }),
  removeFromGroup: args({ group: GroupName, userId: UserId }),
  setGroupRole: args({ group: GroupName, userId: UserId, role: Role }),
  setGroupPolicy: args({
    group: GroupName,
    policy: Policy,
    approval: v.optional(v.boolean('Approval must be true or false.')),
  }),
  copyGroupLink: args({ group: GroupName }),
  leaveGroup: args({ group: GroupName }),
  deleteGroup: args({ group: GroupName }),
  getGroup: args({ group: GroupName }),
  listGroups: NoArgs,
  getGroupSafetyNumber: args({ group: GroupName }),
  getSettings: NoArgs,
  updateSettings: args({
    notifications: v.optional(
      v.picklist(
        ['none', 'sender', 'sender-and-text'],
        'Notifications must be none, sender or sender-and-text.',
      ),
    ),
    theme: v.optional(v.picklist(['system', 'light', 'dark'], 'The theme must be system, light or dark.')),
    relayPort: v.optional(Port),
  }),
} satisfies Record<ApiMethod, v.GenericSchema>;

/** True for ws:// and wss:// URLs with a host and no credentials. */
function isRelayUrl(value: string): boolean {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return false;
  }
  return (u.protocol === 'ws:' || u.protocol === 'wss:') && u.hostname !== '' && !u.username && !u.password;
}

/** Also exported for the shell and the browser bridge: the same validation of one call's arguments. */
export function parseArgs(method: ApiMethod, input: unknown): unknown {
  const r = v.safeParse(SCHEMAS[method], input);
  if (r.success) return r.output;
  throw new ServiceError(ServiceCode.INVALID_ARGUMENT, r.issues[0].message);
}

const KNOWN = new Set<string>(API_METHODS);

/** Creates the dispatcher that checks the sender, the method and the arguments, then calls the service. */
export function createIpcDispatcher(service: Service, options: IpcDispatcherOptions): IpcDispatcher {
  if (typeof options?.isTrustedSender !== 'function') throw new TypeError('isTrustedSender is required');
  return async (senderUrl, method, input) => {
    try {
      if (typeof senderUrl !== 'string' || !options.isTrustedSender(senderUrl))
        throw new ServiceError(ServiceCode.UNTRUSTED_SENDER, 'This page is not allowed to use Sealed.');
      if (typeof method !== 'string' || !KNOWN.has(method))
        throw new ServiceError(ServiceCode.UNKNOWN_METHOD, 'Sealed does not know this request.');
      const name = method as ApiMethod;
      const parsed = parseArgs(name, input);
      const fn = service[name] as (a: unknown) => Promise<unknown>;
      const value = await fn.call(service, parsed);
      return { ok: true, value };
    } catch (e) {
      if (e instanceof ServiceError) return { ok: false, error: { code: e.code, message: e.message } };
      options.onInternalError?.(typeof method === 'string' ? method.slice(0, 64) : '?', e);
      return { ok: false, error: { code: ServiceCode.INTERNAL, message: INTERNAL_MESSAGE } };
    }
  };
}

/**
 * True if `url` is the app's own top-level page: the bundled index.html under the directory
 * `appRoot` (file://), or, when `appRoot` is a URL of the app's custom scheme (e.g. "app://sealed/"),
 * a page under it. Query strings and fragments are ignored; everything else must match exactly.
 */
export function isAppUrl(url: string, appRoot: string): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  if (u.username || u.password) return false;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(appRoot) && !appRoot.toLowerCase().startsWith('file:')) {
    let root: URL;
    try {
      root = new URL(appRoot);
    } catch {
      return false;
    }
    const base = root.pathname.endsWith('/') ? root.pathname : `${root.pathname}/`;
    return (
      u.protocol === root.protocol &&
      u.host === root.host &&
      (u.pathname === root.pathname || u.pathname.startsWith(base)) &&
      !u.pathname.split('/').includes('..')
    );
  }
  if (u.protocol !== 'file:' || (u.host !== '' && u.host !== 'localhost')) return false;
  const rootDir = appRoot.startsWith('file:') ? fileURLToPath(appRoot) : appRoot;
  try {
    return fileURLToPath(u) === path.resolve(rootDir, 'index.html');
  } catch {
    return false;
  }
}
