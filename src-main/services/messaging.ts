/**
 * What the user does inside an unlocked profile: send, manage groups, open conversations, check and
 * confirm contacts' keys. Each function records its effect in the LocalStore and reports it as
 * MessengerEvents; core and relay failures come back as ServiceErrors with plain sentences.
 */
import { randomUUID } from 'node:crypto';
import QRCode from 'qrcode';
import * as v from 'valibot';
import type { E2EEClient } from '../core/client/client.js';
import { parseInviteLink } from '../core/client/group-changes.js';
import { E2EEError, ErrorCode, RelayError } from '../core/errors.js';
import { Name } from '../core/protocol/wire.js';
import type {
  Contact,
  ConversationId,
  ConversationSummary,
  GroupInfo,
  GroupMember,
  GroupPolicy,
  GroupRole,
  GroupSafetyNumber,
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
import { groupInfoOf } from './group-info.js';
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

/**
 * Sends a group message; only to a group we are a full member of, and not while our member list may
 * differ from the others' (the message would go to a roster they do not share).
 */
export async function sendGroup(s: ProfileSession, group: string, text: string): Promise<HistoryItem> {
  const client = await loadedClient(s);
  const info = groupInfoOf(client, group, s.userId);
  if (info?.me.standing !== 'member') throw notAMember(group);
  if (info.outOfSync) throw new ServiceError(ServiceCode.GROUP_OUT_OF_SYNC, info.outOfSync);
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
  // A relay out of storage did not take the message, but the client keeps it and sends it again on
  // the next connection: it stays 'sending' until that ack (an itemStatus event), and the user is told.
  const kept = (r: Awaited<typeof result>): boolean =>
    !r.ok && r.error.code === ServiceCode.RELAY_OUT_OF_STORAGE;
  const settle = (r: Awaited<typeof result>): void => {
    if (s.store.unlocked && !kept(r)) recordStatus(ctx, conversationId, item.id, r.ok ? 'sent' : 'failed');
  };
  if (outcome === 'pending') {
    void result.then((r) => {
      try {
        settle(r);
      } catch (e) {
        // A status the database could not take (issue 11): the storage problem says why.
        if (!ctx.storageFault?.(e)) ctx.log(`status of a sent message not recorded: ${String(e)}`);
      }
      if (!r.ok) ctx.emit({ type: 'error', message: r.error.message });
    });
    return item;
  }
  settle(outcome);
  if (kept(outcome)) {
    ctx.emit({ type: 'error', message: (outcome as { error: Error }).error.message });
    return item;
  }
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

/** The client with its state loaded (groups are read from the store on first use). */
async function loadedClient(s: ProfileSession): Promise<E2EEClient> {
  const client = s.requireClient();
  await client.publicIdentity();
  return client;
}

/** A group we are on the roster of, with the client; NOT_A_MEMBER otherwise. */
async function onRoster(s: ProfileSession, group: string): Promise<{ client: E2EEClient; info: GroupInfo }> {
  const client = await loadedClient(s);
  const info = groupInfoOf(client, group, s.userId);
  if (!info) throw notAMember(group);
  return { client, info };
}

/** A group we are an admin of (a full member with the admin role); NOT_ALLOWED otherwise. */
async function asAdmin(
  s: ProfileSession,
  group: string,
  what: string,
): Promise<{ client: E2EEClient; info: GroupInfo }> {
  const found = await onRoster(s, group);
  if (found.info.me.standing !== 'member') throw notAMember(group);
  if (found.info.me.role !== 'admin') throw notAllowed(`Only an admin of ${group} can ${what}.`);
  return found;
}

function notAllowed(message: string): ServiceError {
  return new ServiceError(ServiceCode.NOT_ALLOWED, message);
}

/** Someone on the roster (for changes about them); NOT_FOUND with a sentence otherwise. */
function rosterEntry(info: GroupInfo, userId: string): GroupMember {
  const entry = info.roster.find((m) => m.userId === userId);
  if (!entry)
    throw new ServiceError(ServiceCode.NOT_FOUND, `${userId} is not a member of ${info.group}, nor invited.`);
  return entry;
}

/** Runs a client call for a group, translating its refusal with the group's name (and our sentence). */
async function groupCall<T>(context: ErrorContext & { group: string }, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toServiceError(e, context);
  }
}

/** The group's info after a change we made (our change is applied before the call returns). */
function infoAfter(s: ProfileSession, client: E2EEClient, group: string): GroupInfo {
  const info = groupInfoOf(client, group, s.userId);
  if (!info) throw notAMember(group);
  return info;
}

function ensureGroupConversation(s: ProfileSession, group: string): void {
  const id: ConversationId = `group:${group}`;
  if (s.store.conversation(id)) return;
  const ctx = s.context();
  ctx.emit({ type: 'conversation', summary: s.store.ensureConversation(id, ctx.now()) });
}

/** Creates a group with us as its first admin: invite-only unless 'open' was chosen. */
export async function createGroup(
  s: ProfileSession,
  group: string,
  policy: 'invite-only' | 'open' = 'invite-only',
): Promise<GroupInfo> {
  const client = await loadedClient(s);
  if (groupInfoOf(client, group, s.userId))
    throw new ServiceError(ServiceCode.GROUP_EXISTS, `You are already in a group named ${group}.`);
  await groupCall({ group }, () => client.createGroup(group, { policy }));
  ensureGroupConversation(s, group);
  return infoAfter(s, client, group);
}

/** Joins an open group by its name (a member already in it just gets its info). */
export async function joinGroup(s: ProfileSession, group: string): Promise<GroupInfo> {
  const client = await loadedClient(s);
  const known = groupInfoOf(client, group, s.userId);
  if (known?.me.standing === 'invited')
    throw notAllowed(`You are invited to ${group}: accept the invitation to join it.`);
  if (known?.me.standing === 'requested')
    throw notAllowed(`You asked to join ${group}: an admin of it has to approve your request.`);
  if (!known)
    await groupCall(
      {
        group,
        notAllowed: `You can only join ${group} with an invitation or its invite link. Ask one of its admins.`,
      },
      () => client.joinGroup(group),
    );
  ensureGroupConversation(s, group);
  return infoAfter(s, client, group);
}

/** Joins with an invite link: a member at once, or asking to join when an admin must approve. */
export async function joinGroupWithLink(s: ProfileSession, link: string): Promise<GroupInfo> {
  let group: string;
  try {
    group = parseInviteLink(link).group;
  } catch {
    throw invalid('This is not a Sealed invite link. It starts with sealed://join.');
  }
  if (!v.is(Name, group)) throw invalid('This invite link names no valid group.');
  const client = await loadedClient(s);
  const known = groupInfoOf(client, group, s.userId);
  if (known?.me.standing === 'invited')
    throw notAllowed(`You are invited to ${group}: accept the invitation to join it.`);
  const stale = `This invite link to ${group} does not work any more: an admin replaced or revoked it. Ask for a new one.`;
  if (!known)
    await groupCall({ group, notAllowed: stale }, () =>
      client.joinGroupWithLink(link).catch((e: unknown) => {
        // The client refuses a link whose key is not the group's current one (NOT_ALLOWED, mapped to
        // `stale` above); a relay that refuses the entry anyway means the same.
        if (e instanceof RelayError && e.relayCode === 'BAD_ENTRY') throw notAllowed(stale);
        throw e;
      }),
    );
  ensureGroupConversation(s, group);
  return infoAfter(s, client, group);
}

/** Invites a user (admins only); they accept or decline. */
export async function inviteToGroup(s: ProfileSession, group: string, userId: string): Promise<GroupInfo> {
  if (userId === s.userId) throw invalid(`You are already in ${group}.`);
  const { client, info } = await asAdmin(s, group, 'invite people');
  const there = info.roster.find((m) => m.userId === userId);
  if (there?.standing === 'member') throw invalid(`${userId} is already a member of ${group}.`);
  if (there?.standing === 'invited') throw invalid(`${userId} is already invited to ${group}.`);
  if (there?.standing === 'requested')
    throw invalid(`${userId} already asked to join ${group}: approve the request instead.`);
  if (client.identityChangePending(userId) || s.store.getContact(userId)?.keyChanged)
    throw keyChanged(userId);
  await groupCall({ group, userId, notAllowed: `You cannot invite ${userId} to ${group}.` }, () =>
    client.inviteToGroup(group, userId),
  );
  ensureContact(s.context(), userId);
  return infoAfter(s, client, group);
}

/** Accepts an invitation: we become a member and read the group's messages from now on. */
export async function acceptGroupInvitation(s: ProfileSession, group: string): Promise<GroupInfo> {
  const { client, info } = await onRoster(s, group);
  if (info.me.standing !== 'invited') throw notAllowed(`You have no invitation to ${group}.`);
  await groupCall({ group, notAllowed: `Your invitation to ${group} is no longer valid.` }, () =>
    client.acceptGroupInvitation(group),
  );
  ensureGroupConversation(s, group);
  return infoAfter(s, client, group);
}

/** Declines an invitation. */
export async function declineGroupInvitation(s: ProfileSession, group: string): Promise<void> {
  const { client, info } = await onRoster(s, group);
  if (info.me.standing !== 'invited') throw notAllowed(`You have no invitation to ${group}.`);
  await groupCall({ group }, () => client.declineGroupInvitation(group));
}

/** Approves a request to join made with the invite link (admins only). */
export async function approveJoinRequest(
  s: ProfileSession,
  group: string,
  userId: string,
): Promise<GroupInfo> {
  const { client, info } = await asAdmin(s, group, 'approve requests to join');
  if (rosterEntry(info, userId).standing !== 'requested')
    throw invalid(`${userId} has not asked to join ${group}.`);
  await groupCall({ group, userId }, () => client.approveJoinRequest(group, userId));
  return infoAfter(s, client, group);
}

/** Removes a member, withdraws an invitation or declines a request to join (admins only). */
export async function removeFromGroup(s: ProfileSession, group: string, userId: string): Promise<GroupInfo> {
  if (userId === s.userId) throw invalid(`To leave ${group}, use "Leave group".`);
  const { client, info } = await asAdmin(s, group, 'remove people');
  rosterEntry(info, userId);
  await groupCall({ group, userId }, () => client.removeFromGroup(group, userId));
  return infoAfter(s, client, group);
}

/** Makes a member an admin, or an admin a member (admins only; a group keeps one admin). */
export async function setGroupRole(
  s: ProfileSession,
  group: string,
  userId: string,
  role: GroupRole,
): Promise<GroupInfo> {
  const { client, info } = await asAdmin(s, group, 'change who is an admin');
  const entry = rosterEntry(info, userId);
  if (entry.standing !== 'member')
    throw invalid(`${userId} is not a member of ${group} yet: only members can be admins.`);
  if (entry.role === role)
    throw invalid(
      `${userId} is already ${role === 'admin' ? 'an admin' : 'a member without the admin role'}.`,
    );
  const admins = info.roster.filter((m) => m.standing === 'member' && m.role === 'admin').length;
  if (role === 'member' && admins === 1)
    throw notAllowed(`${group} needs at least one admin: make another member an admin first.`);
  await groupCall({ group, userId }, () => client.setGroupRole(group, userId, role));
  return infoAfter(s, client, group);
}

/** Sets who may join (admins only); 'link' makes a new invite link, shown in the returned info. */
export async function setGroupPolicy(
  s: ProfileSession,
  group: string,
  policy: GroupPolicy,
  approval: boolean | undefined,
): Promise<GroupInfo> {
  if (approval && policy !== 'link') throw invalid('Approving each request applies to the invite link only.');
  const { client } = await asAdmin(s, group, 'change who may join');
  await groupCall({ group }, () => client.setGroupJoinPolicy(group, policy, { approval: approval ?? false }));
  return infoAfter(s, client, group);
}

/** Puts the current invite link on the clipboard (admins who made it). */
export async function copyGroupLink(
  s: ProfileSession,
  group: string,
  writeClipboard: ((text: string) => void) | undefined,
): Promise<void> {
  const { info } = await asAdmin(s, group, 'share the invite link');
  if (!info.link)
    throw new ServiceError(
      ServiceCode.NOT_FOUND,
      `This computer has no invite link to ${group}. Make a new one under "Who can join".`,
    );
  if (!writeClipboard)
    throw new ServiceError(ServiceCode.CLIPBOARD_UNAVAILABLE, 'Sealed cannot reach the clipboard here.');
  writeClipboard(info.link);
}

/** Leaves a group (the conversation and its history stay); the last admin names another one first. */
export async function leaveGroup(s: ProfileSession, group: string): Promise<void> {
  const { client, info } = await onRoster(s, group);
  const admins = info.roster.filter((m) => m.standing === 'member' && m.role === 'admin');
  const others = info.members.filter((m) => m !== s.userId);
  if (info.me.role === 'admin' && info.me.standing === 'member' && admins.length === 1 && others.length > 0)
    throw notAllowed(`You are the last admin of ${group}. Make another member an admin before you leave.`);
  await groupCall({ group }, () => client.leaveGroup(group));
}

/** Deletes a group for everyone (admins only). */
export async function deleteGroup(s: ProfileSession, group: string): Promise<void> {
  const { client } = await asAdmin(s, group, 'delete it');
  await groupCall({ group }, () => client.deleteGroup(group));
}

/** A group we are on the roster of, from local state (works offline). */
export async function getGroup(s: ProfileSession, group: string): Promise<GroupInfo> {
  if (!s.client) throw notAMember(group);
  return (await onRoster(s, group)).info;
}

/** Every group we are on the roster of, by name (none before a relay was ever chosen). */
export async function listGroups(s: ProfileSession): Promise<GroupInfo[]> {
  if (!s.client) return [];
  const client = await loadedClient(s);
  return client
    .listGroups()
    .flatMap(({ group }) => groupInfoOf(client, group, s.userId) ?? [])
    .sort((a, b) => (a.group < b.group ? -1 : a.group > b.group ? 1 : 0));
}

/** The group safety number as digits and a QR code. */
export async function groupSafetyNumber(s: ProfileSession, group: string): Promise<GroupSafetyNumber> {
  const info = await getGroup(s, group);
  const qrSvg = await QRCode.toString(info.safetyNumber, {
    type: 'svg',
    errorCorrectionLevel: 'M',
    margin: 2,
  });
  return { group, digits: info.safetyNumber, qrSvg };
}
