/**
 * What the user does inside an unlocked profile: send, manage groups, open conversations, check and
 * confirm contacts' keys. Each function records its effect in the LocalStore and reports it as
 * MessengerEvents; core and relay failures come back as ServiceErrors with plain sentences.
 */
import { randomUUID } from 'node:crypto';
import QRCode from 'qrcode';
import type {
  ConversationId,
  ConversationSummary,
  GroupInfo,
  HistoryItem,
  SafetyNumber,
} from '../shared/messenger-api.js';
import { ensureContact, recordEvent, recordItems, recordStatus } from './client-bridge.js';
import {
  ServiceCode,
  ServiceError,
  keyChanged,
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

/** Accepts a contact's new key: sending resumes, the contact is no longer verified. */
export async function acceptKeyChange(s: ProfileSession, userId: string): Promise<void> {
  const client = s.requireClient();
  // Interim: the number shown is not carried from the renderer yet; the pending key's own is used.
  const digits = await client.pendingSafetyNumber(userId);
  if (digits) await client.approveIdentity(userId, digits);
  const ctx = s.context();
  ctx.emit({
    type: 'contact',
    contact: s.store.upsertContact(userId, { keyChanged: false, verified: false }),
  });
  recordEvent(ctx, `dm:${userId}`, s.userId, `You accepted ${userId}'s new security key.`);
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
