/**
 * What the user does inside an unlocked profile: send, manage groups, open conversations, check and
 * confirm contacts' keys. Each function records its effect in the LocalStore and reports it as
 * MessengerEvents; core and relay failures come back as ServiceErrors with plain sentences.
 */
import { randomUUID } from 'node:crypto';
import QRCode from 'qrcode';
import { E2EEError, ErrorCode } from '../core/errors.js';
import type {
  Contact,
  ConversationId,
  ConversationSummary,
  GroupInfo,
  HistoryItem,
  SafetyNumber,
} from '../shared/messenger-api.js';
import {
  contactView,
  ensureContact,
  recordEvent,
  recordItems,
  recordStatus,
  reportContact,
  sharedGroups,
} from './client-bridge.js';
import {
  ServiceCode,
  ServiceError,
  keyChanged,
  keyChangedAgain,
  noKeyChange,
  notAMember,
  toServiceError,
  type ErrorContext,
} from './errors.js';
import type { ProfileSession } from './session.js';

/** INVALID_ARGUMENT with a sentence. */
export function invalid(message: string): ServiceError {
  return new ServiceError(ServiceCode.INVALID_ARGUMENT, message);
}

function noSafetyNumber(userId: string): ServiceError {
  return new ServiceError(
    ServiceCode.NO_SAFETY_NUMBER,
    `There is no safety number with ${userId} yet. Send or receive a message first.`,
  );
}

// ---------------------------------------------------------------------------------------------
// Sending

/** Sends a direct message; refused while the contact's key change is unconfirmed. */
export function sendDirect(s: ProfileSession, to: string, text: string): Promise<HistoryItem> {
  if (to === s.userId) throw invalid('You cannot send a message to yourself.');
  const client = s.requireClient();
  if (client.identityChangePending(to) || s.store.getContact(to)?.keyChanged) throw keyChanged(to);
  ensureContact(s.context(), to);
  return sendItem(s, `dm:${to}`, text, (id) => client.sendDirectMessage(to, text, { id }), { userId: to });
}

/** Sends a group message; only to a group we are a member of. */
export function sendGroup(s: ProfileSession, group: string, text: string): Promise<HistoryItem> {
  const client = s.requireClient();
  if (!client.listGroups().some((g) => g.group === group && g.members.includes(s.userId)))
    throw notAMember(group);
  return sendItem(s, `group:${group}`, text, (id) => client.sendGroupMessage(group, text, { id }), { group });
}

/**
 * Records the outgoing item as 'sending' before the client sees it (same id as the message, so acks
 * find it even after a restart resends it from the outbox), then waits briefly for the relay's ack:
 * a quick failure (offline without a session, unknown user) is thrown as a plain error; a slow send
 * returns the item as 'sending' and later changes arrive as itemStatus events.
 */
async function sendItem(
  s: ProfileSession,
  conversationId: ConversationId,
  text: string,
  send: (id: string) => Promise<string>,
  errorContext: ErrorContext,
): Promise<HistoryItem> {
  const ctx = s.context();
  const item: HistoryItem = {
    id: randomUUID(),
    conversationId,
    kind: 'message',
    from: s.userId,
    text,
    at: ctx.now(),
    direction: 'out',
    status: 'sending',
  };
  recordItems(ctx, [item]);
  const result = send(item.id).then(
    () => ({ ok: true as const }),
    (e: unknown) => ({ ok: false as const, error: toServiceError(e, errorContext) }),
  );
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<'pending'>((resolve) => {
    timer = setTimeout(() => resolve('pending'), s.options.sendWaitMs);
  });
  const outcome = await Promise.race([result, waited]);
  clearTimeout(timer);
  const settle = (r: Awaited<typeof result>): void => {
    if (s.store.unlocked) recordStatus(ctx, conversationId, item.id, r.ok ? 'sent' : 'failed');
  };
  if (outcome === 'pending') {
    void result.then((r) => {
      settle(r);
      if (!r.ok) ctx.emit({ type: 'error', message: r.error.message });
    });
    return item;
  }
  settle(outcome);
  if (!outcome.ok) throw outcome.error;
  return s.store.getItem(conversationId, item.id) ?? item;
}

// ---------------------------------------------------------------------------------------------
// Conversations and contacts

/** Opens (or returns) the direct conversation with `userId`. */
export function openDirect(s: ProfileSession, userId: string): ConversationSummary {
  if (userId === s.userId) throw invalid('You cannot start a conversation with yourself.');
  const id: ConversationId = `dm:${userId}`;
  const existed = s.store.conversation(id) !== undefined;
  const ctx = s.context();
  ensureContact(ctx, userId);
  const summary = s.store.ensureConversation(id, ctx.now());
  if (!existed) ctx.emit({ type: 'conversation', summary });
  return summary;
}

/** The safety number with a contact, as digits and a QR code; during a key change, for the new key. */
export async function safetyNumber(s: ProfileSession, userId: string): Promise<SafetyNumber> {
  const client = s.client;
  if (!client) throw noSafetyNumber(userId);
  await client.publicIdentity(); // loads the client's state if it has not connected yet
  // While a key change is pending, show the number of the key the user is about to accept.
  const digits = (await client.pendingSafetyNumber(userId)) ?? client.safetyNumber(userId);
  if (!digits) throw noSafetyNumber(userId);
  const contact = s.store.getContact(userId);
  const qrSvg = await QRCode.toString(digits, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
  return {
    userId,
    digits,
    qrSvg,
    verified: contact?.verified ?? false,
    keyChanged: contact?.keyChanged ?? false,
  };
}

/** Marks a contact verified (after comparing safety numbers) or not. */
export function setVerified(s: ProfileSession, userId: string, verified: boolean): void {
  if (verified) {
    if (s.store.getContact(userId)?.keyChanged || s.client?.identityChangePending(userId))
      throw keyChanged(userId);
    if (!s.client?.safetyNumber(userId)) throw noSafetyNumber(userId);
  }
  s.context().emit({ type: 'contact', contact: s.store.upsertContact(userId, { verified }) });
}

/** Every contact, each with its pending key while a key change waits for the user. */
export async function listContacts(s: ProfileSession): Promise<Contact[]> {
  const client = s.client;
  await client?.publicIdentity(); // loads the client's state if it has not connected yet
  return Promise.all(s.store.listContacts().map((c) => contactView(client, c)));
}

const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

/**
 * Before a decision: the client's pending change of `userId`, or (when the client has none but our own
 * flag says so: a change decided before a crash) the flag cleared and false; NO_KEY_CHANGE otherwise.
 */
async function pendingDecision(s: ProfileSession, userId: string): Promise<boolean> {
  const client = s.requireClient();
  await client.publicIdentity();
  if (client.identityChangePending(userId)) return true;
  if (!s.store.getContact(userId)?.keyChanged) throw noKeyChange(userId);
  s.context().emit({ type: 'contact', contact: s.store.upsertContact(userId, { keyChanged: false }) });
  return false;
}

/**
 * Accepts a contact's new key with the safety number the user was shown: sending resumes, the messages
 * held under that key are shown, the contact is no longer verified. If another key arrived since the
 * number was shown, KEY_CHANGED_AGAIN and nothing changes (the contact is reported with the new number).
 */
export async function acceptKeyChange(
  s: ProfileSession,
  userId: string,
  safetyNumber: string,
): Promise<void> {
  if (!/^\d{60}$/.test(safetyNumber.replace(/\s+/g, '')))
    throw invalid('The safety number must be the 60 digits shown.');
  if (!(await pendingDecision(s, userId))) return;
  const client = s.requireClient();
  const ctx = s.context();
  let released: number;
  try {
    ({ released } = await client.approveIdentity(userId, safetyNumber));
  } catch (e) {
    if (e instanceof E2EEError && e.code === ErrorCode.SAFETY_NUMBER_MISMATCH) {
      await reportContact(ctx, client, userId);
      throw keyChangedAgain(userId);
    }
    if (e instanceof E2EEError && e.code === ErrorCode.USAGE) throw noKeyChange(userId);
    throw toServiceError(e, { userId });
  }
  ctx.emit({
    type: 'contact',
    contact: s.store.upsertContact(userId, { keyChanged: false, verified: false }),
  });
  recordEvent(
    ctx,
    `dm:${userId}`,
    s.userId,
    released > 0
      ? `You accepted ${userId}'s new security key. The ${plural(released, 'message', 'messages')} it held until now ${released === 1 ? 'is' : 'are'} shown above.`
      : `You accepted ${userId}'s new security key.`,
  );
  for (const group of sharedGroups(client, s.userId, userId))
    recordEvent(ctx, `group:${group}`, s.userId, `You accepted ${userId}'s new security key.`);
}

/**
 * Rejects a contact's new key: the key the user had stays (sending resumes on it), what came under the
 * new key is deleted unread, and later messages under it are refused.
 */
export async function rejectKeyChange(s: ProfileSession, userId: string): Promise<void> {
  if (!(await pendingDecision(s, userId))) return;
  const client = s.requireClient();
  const ctx = s.context();
  let dropped: number;
  try {
    dropped = await client.rejectIdentity(userId);
  } catch (e) {
    if (e instanceof E2EEError && e.code === ErrorCode.USAGE) throw noKeyChange(userId);
    throw toServiceError(e, { userId });
  }
  ctx.emit({ type: 'contact', contact: s.store.upsertContact(userId, { keyChanged: false }) });
  recordEvent(
    ctx,
    `dm:${userId}`,
    s.userId,
    `You rejected ${userId}'s new security key: your messages stay with the key you had.${
      dropped > 0
        ? ` The ${plural(dropped, 'message', 'messages')} sent under the new key ${dropped === 1 ? 'was' : 'were'} deleted unread.`
        : ''
    }`,
  );
  for (const group of sharedGroups(client, s.userId, userId))
    recordEvent(ctx, `group:${group}`, s.userId, `You rejected ${userId}'s new security key.`);
}

// ---------------------------------------------------------------------------------------------
// Groups

/** Runs a relay request for a group, translating its refusal with the group's name. */
async function groupCall<T>(group: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toServiceError(e, { group });
  }
}

function ensureGroupConversation(s: ProfileSession, group: string): void {
  const id: ConversationId = `group:${group}`;
  if (s.store.conversation(id)) return;
  const ctx = s.context();
  ctx.emit({ type: 'conversation', summary: s.store.ensureConversation(id, ctx.now()) });
}

/** Creates a group with us as creator and only member. */
export async function createGroup(s: ProfileSession, group: string): Promise<GroupInfo> {
  const client = s.requireClient();
  await groupCall(group, () => client.createGroup(group));
  ensureGroupConversation(s, group);
  return { group, creator: s.userId, members: [s.userId] };
}

/** Joins a group; the relay's answer names its creator. */
export async function joinGroup(s: ProfileSession, group: string): Promise<GroupInfo> {
  const client = s.requireClient();
  const r = await groupCall(group, () => client.joinGroup(group));
  ensureGroupConversation(s, group);
  return { group, creator: r.creator, members: [...r.members].sort() };
}

/** Leaves a group (the conversation and its history stay). */
export async function leaveGroup(s: ProfileSession, group: string): Promise<void> {
  const client = s.requireClient();
  await groupCall(group, () => client.leaveGroup(group));
}

/** Deletes a group (creator only). */
export async function deleteGroup(s: ProfileSession, group: string): Promise<void> {
  const client = s.requireClient();
  await groupCall(group, () => client.deleteGroup(group));
}

/** A group we are a member of, from local state (works offline). */
export function getGroup(s: ProfileSession, group: string): GroupInfo {
  const found = s.client?.listGroups().find((g) => g.group === group);
  if (!found || !found.members.includes(s.userId)) throw notAMember(group);
  return found;
}
