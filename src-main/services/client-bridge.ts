/**
 * Turns what the E2EEClient reports (messages, acks, group and identity events, connection changes)
 * into history items in the LocalStore and MessengerEvents for the renderer. Every write happens in
 * the event handler itself, synchronously (better-sqlite3), before the client tells the relay that the
 * message was received, so a crash after that point cannot lose the message from the history.
 */
import { randomUUID } from 'node:crypto';
import type { E2EEClient } from '../core/client/client.js';
import { ErrorCode, RelayError } from '../core/errors.js';
import type {
  ConnectionState,
  Contact,
  ConversationId,
  GroupPolicy,
  GroupStanding,
  HistoryItem,
  MessageStatus,
  MessengerEvent,
} from '../shared/messenger-api.js';
import { toServiceError } from './errors.js';
import { groupInfoOf, leaveLine, policyLine } from './group-info.js';
import type { LocalStore } from './local-store.js';

/** A desktop notification; the shell shows it (or not, when the window is focused). */
export interface Notification {
  readonly title: string;
  readonly body: string;
}

/** What the bridge writes to and reports through. */
export interface BridgeContext {
  readonly store: LocalStore;
  readonly userId: string;
  now(): number;
  emit(event: MessengerEvent): void;
  notify(n: Notification): void;
  setConnection(state: ConnectionState, error?: string): void;
  log(line: string): void;
  /**
   * Told of an error that may be a storage fault (the database cannot be written); true if it is one:
   * the service then pauses delivery and sending (issue 11).
   */
  storageFault?(e: unknown): boolean;
}

/**
 * Handlers whose failure must stop the client: what they write (history, contacts) belongs to a message
 * the client acknowledges to the relay only once its handlers returned. A storage fault in one of them
 * is thrown back into the client, so the message is not acknowledged and comes again (issue 11).
 */
const REPORTING_ONLY = new Set([
  'connect',
  'disconnect',
  'error',
  'e2eeError',
  'ack',
  'messagesHeld',
  'groupOutOfSync',
]);

/** Longest message text put in a notification. */
const NOTIFY_TEXT_CHARS = 200;

/** Writes items (one transaction) and reports the new ones with their conversations' summaries. */
export function recordItems(ctx: BridgeContext, items: readonly HistoryItem[]): HistoryItem[] {
  const added = ctx.store.addItems(items);
  const touched = new Set<ConversationId>();
  for (const item of added) {
    ctx.emit({ type: 'item', item });
    touched.add(item.conversationId);
  }
  for (const id of touched) {
    const summary = ctx.store.conversation(id);
    if (summary) ctx.emit({ type: 'conversation', summary });
  }
  return added;
}

/** Moves an outgoing item's status forward and reports it if it changed. */
export function recordStatus(
  ctx: BridgeContext,
  conversationId: ConversationId,
  id: string,
  status: MessageStatus,
): void {
  if (ctx.store.setItemStatus(conversationId, id, status)) {
    ctx.emit({ type: 'itemStatus', conversationId, id, status });
  }
}

/** Adds an event line ("bob joined the group.") to a conversation. */
export function recordEvent(
  ctx: BridgeContext,
  conversationId: ConversationId,
  subject: string,
  text: string,
): void {
  recordItems(ctx, [
    {
      id: randomUUID(),
      conversationId,
      kind: 'event',
      from: subject,
      text,
      at: ctx.now(),
      direction: subject === ctx.userId ? 'out' : 'in',
    },
  ]);
}

/**
 * A contact as the renderer sees it: while the client holds a key change of theirs for the user's
 * decision, with the new key's safety number (what acceptKeyChange must carry) and the held count.
 */
export async function contactView(client: E2EEClient | undefined, contact: Contact): Promise<Contact> {
  const safetyNumber = client && (await client.pendingSafetyNumber(contact.userId));
  if (!client || !safetyNumber) return contact;
  const held = client.heldMessageCount(contact.userId);
  return { ...contact, keyChanged: true, pendingKey: { safetyNumber, held } };
}

/**
 * Reports a contact as it is once the client answers: state read after the wait, so a report that
 * resolves late never undoes a later decision (the service reports again after each decision).
 */
export async function reportContact(ctx: BridgeContext, client: E2EEClient, userId: string): Promise<void> {
  const safetyNumber = await client.pendingSafetyNumber(userId);
  if (!ctx.store.unlocked) return;
  const contact = ctx.store.getContact(userId) ?? ctx.store.upsertContact(userId);
  const held = client.heldMessageCount(userId);
  ctx.emit({
    type: 'contact',
    contact: safetyNumber ? { ...contact, keyChanged: true, pendingKey: { safetyNumber, held } } : contact,
  });
}

/** The groups `userId` shares with us (both members, in our local state). */
export function sharedGroups(client: E2EEClient, me: string, userId: string): string[] {
  return client
    .listGroups()
    .filter((g) => g.members.includes(me) && g.members.includes(userId))
    .map((g) => g.group);
}

/** Ensures a contact exists (reporting it when new) and returns nothing. */
export function ensureContact(ctx: BridgeContext, userId: string): void {
  if (userId === ctx.userId || ctx.store.getContact(userId)) return;
  ctx.emit({ type: 'contact', contact: ctx.store.upsertContact(userId) });
}

/**
 * The sentence for a client's e2eeError. Besides undecryptable incoming messages, the client reports
 * group members its new sender key could not reach yet (their key changed, or no session was possible).
 */
function e2eeErrorText(e: { code: string; from?: string | undefined; group?: string | undefined }): string {
  const where = e.group ? ` in ${e.group}` : '';
  if (!e.from) return 'The relay sent something Sealed could not read.';
  switch (e.code) {
    case ErrorCode.IDENTITY_CHANGED:
      return `${e.from}'s security key changed. Accept or reject the new key so that your messages${where} reach them.`;
    case ErrorCode.IDENTITY_REJECTED:
      return `A message from ${e.from}${where} came under the security key you rejected. It was deleted unread.`;
    case ErrorCode.RELAY:
    case ErrorCode.NOT_CONNECTED:
      return `Sealed could not reach ${e.from}${where} yet and will try again.`;
    default:
      return `A message from ${e.from}${where} could not be decrypted.`;
  }
}

function notifyIncoming(ctx: BridgeContext, from: string, text: string, group?: string): void {
  const mode = ctx.store.getSettings().notifications;
  if (mode === 'none') return;
  const where = group ? ` in ${group}` : '';
  if (mode === 'sender') {
    ctx.notify({ title: 'Sealed', body: `New message from ${from}${where}` });
  } else {
    const body = text.length > NOTIFY_TEXT_CHARS ? `${text.slice(0, NOTIFY_TEXT_CHARS - 1)}…` : text;
    ctx.notify({ title: `${from}${where}`, body });
  }
}

function incoming(
  ctx: BridgeContext,
  conversationId: ConversationId,
  id: string,
  from: string,
  text: string,
): boolean {
  const item: HistoryItem = {
    id,
    conversationId,
    kind: 'message',
    from,
    text,
    at: ctx.now(),
    direction: 'in',
  };
  return recordItems(ctx, [item]).length > 0;
}

/** Subscribes to a client's events; returns the function that unsubscribes. */
export function bridgeClient(client: E2EEClient, ctx: BridgeContext): () => void {
  const dm = (userId: string): ConversationId => `dm:${userId}`;
  const grp = (group: string): ConversationId => `group:${group}`;
  const me = ctx.userId;
  /** A user as the subject of a line: "You" for the user themself. */
  const who = (userId: string, self = 'You'): string => (userId === me ? self : userId);
  const groups = new GroupReports(client, ctx);
  // A failing handler must not break the client's event loop: report it and carry on. A storage fault is
  // reported as the storage problem instead, and (see REPORTING_ONLY) thrown back into the client.
  const guard =
    <A extends unknown[]>(name: string, fn: (...args: A) => void) =>
    (...args: A): void => {
      try {
        fn(...args);
      } catch (e) {
        if (ctx.storageFault?.(e)) {
          ctx.log(`${name} handler could not write: ${e instanceof Error ? e.message : String(e)}`);
          if (REPORTING_ONLY.has(name)) return;
          throw e;
        }
        ctx.log(`${name} handler failed: ${e instanceof Error ? e.message : String(e)}`);
        ctx.emit({ type: 'error', message: toServiceError(e).message });
      }
    };

  const handlers = {
    connect: guard('connect', () => {
      ctx.setConnection('connected');
      // Connecting compared every group with the relay's log: a problem may have been found or resolved.
      for (const { group } of client.listGroups()) groups.changed(group);
    }),
    disconnect: guard('disconnect', () => ctx.setConnection('reconnecting')),
    error: guard('error', (e: Error) => {
      // A write the client could not make (its state, with a message it then did not acknowledge).
      if (ctx.storageFault?.(e)) ctx.log(`client could not write: ${e.message}`);
      // Only a refused authentication is final; socket errors are retried by the client.
      else if (e instanceof RelayError && e.relayCode === 'AUTH_FAILED') {
        ctx.setConnection('offline', toServiceError(e).message);
      } else ctx.log(`client: ${e.message}`);
    }),
    e2eeError: guard(
      'e2eeError',
      (e: { code: string; from?: string | undefined; group?: string | undefined }) => {
        ctx.log(`could not process a message (${e.code})`);
        ctx.emit({ type: 'error', message: e2eeErrorText(e) });
      },
    ),
    message: guard('message', (m: { id: string; from: string; text: string }) => {
      ensureContact(ctx, m.from);
      if (incoming(ctx, dm(m.from), m.id, m.from, m.text)) notifyIncoming(ctx, m.from, m.text);
    }),
    groupMessage: guard('groupMessage', (m: { id: string; group: string; from: string; text: string }) => {
      if (incoming(ctx, grp(m.group), m.id, m.from, m.text)) notifyIncoming(ctx, m.from, m.text, m.group);
      // A message carries its sender's view of the member list: ours may now agree again (or not).
      groups.changed(m.group);
    }),
    ack: guard(
      'ack',
      (a: { id: string; to: string; group?: string | undefined; state: 'sent' | 'delivered' }) => {
        recordStatus(ctx, a.group ? grp(a.group) : dm(a.to), a.id, a.state);
      },
    ),
    // Every roster change is a line in the group's conversation (a change found when reading the log
    // at connect time too: the client announces it the same way), and the group's new state an event.
    groupCreated: guard('groupCreated', (e: { group: string }) => {
      const policy = client.groupDetails(e.group)?.policy;
      recordEvent(ctx, grp(e.group), me, `You created the group. ${policyLine(policy ?? 'invite-only')}`);
      groups.changed(e.group);
    }),
    groupInvitation: guard('groupInvitation', (e: { group: string; by: string }) => {
      recordEvent(
        ctx,
        grp(e.group),
        e.by,
        `${e.by} invited you to the group. Accept to read and write here.`,
      );
      notifyInvitation(ctx, e.by, e.group);
      groups.changed(e.group);
    }),
    groupMemberInvited: guard('groupMemberInvited', (e: { group: string; userId: string; by: string }) => {
      recordEvent(ctx, grp(e.group), e.by, `${who(e.by)} invited ${e.userId}.`);
      groups.changed(e.group);
    }),
    groupJoinRequest: guard('groupJoinRequest', (e: { group: string; userId: string }) => {
      recordEvent(
        ctx,
        grp(e.group),
        e.userId,
        e.userId === me
          ? 'You asked to join with the invite link. An admin of the group has to approve your request.'
          : `${e.userId} asked to join with the invite link.`,
      );
      groups.changed(e.group);
    }),
    groupJoin: guard('groupJoin', (e: { group: string }) => {
      recordEvent(ctx, grp(e.group), me, 'You joined the group.');
      groups.changed(e.group);
    }),
    groupMemberJoin: guard(
      'groupMemberJoin',
      (e: { group: string; userId: string; by?: string | undefined }) => {
        const approved =
          e.by !== undefined && e.by !== e.userId ? ` (${who(e.by, 'you')} approved the request)` : '';
        recordEvent(ctx, grp(e.group), e.userId, `${e.userId} joined the group${approved}.`);
        groups.changed(e.group);
      },
    ),
    groupMemberLeave: guard('groupMemberLeave', (e: GroupLeave & { userId: string }) => {
      recordEvent(ctx, grp(e.group), e.removedBy ?? e.userId, leaveLine(e.userId, e, me));
      groups.changed(e.group);
    }),
    groupLeave: guard('groupLeave', (e: GroupLeave) => {
      recordEvent(ctx, grp(e.group), e.removedBy ?? me, leaveLine(me, e, me));
      groups.changed(e.group);
    }),
    groupRoleChanged: guard(
      'groupRoleChanged',
      (e: { group: string; userId: string; role: string; by: string }) => {
        const target = who(e.userId, 'you');
        const line =
          e.role === 'admin'
            ? `${who(e.by)} made ${target} an admin.`
            : `${who(e.by)} took the admin role from ${target}.`;
        recordEvent(ctx, grp(e.group), e.by, line);
        groups.changed(e.group);
      },
    ),
    groupPolicyChanged: guard(
      'groupPolicyChanged',
      (e: { group: string; policy: GroupPolicy; approval: boolean; linkChanged: boolean; by: string }) => {
        // A new link always replaces the previous one (if any); another policy revokes the link.
        const line =
          e.policy === 'link'
            ? `${who(e.by)} made a new invite link: anyone with the link can now ${e.approval ? 'ask to join (an admin approves each request)' : 'join'}.`
            : `${who(e.by)} changed who can join. ${policyLine(e.policy)}${e.linkChanged ? ' The invite link no longer works.' : ''}`;
        recordEvent(ctx, grp(e.group), e.by, line);
        groups.changed(e.group);
      },
    ),
    groupOutOfSync: guard('groupOutOfSync', (e: { group: string }) => groups.changed(e.group)),
    groupDeleted: guard('groupDeleted', (e: { group: string; by?: string | undefined }) => {
      recordEvent(
        ctx,
        grp(e.group),
        e.by ?? me,
        e.by ? `${who(e.by)} deleted the group.` : 'The group was deleted.',
      );
      groups.changed(e.group);
    }),
    keysRotated: guard('keysRotated', (e: { group: string }) =>
      recordEvent(ctx, grp(e.group), ctx.userId, 'Keys rotated: your next messages use a new group key.'),
    ),
    identityChanged: guard('identityChanged', (e: { userId: string; safetyNumber: string }) => {
      // Recorded now, before the message that revealed the key is handled (issue 7); every new key is
      // a new line, so a key that replaces the one being compared is never silent (issue 8).
      const again = ctx.store.getContact(e.userId)?.keyChanged === true;
      const contact = ctx.store.upsertContact(e.userId, { keyChanged: true, verified: false });
      const held = client.heldMessageCount(e.userId);
      ctx.emit({
        type: 'contact',
        contact: { ...contact, pendingKey: { safetyNumber: e.safetyNumber, held } },
      });
      recordEvent(
        ctx,
        dm(e.userId),
        e.userId,
        again
          ? `${e.userId}'s security key changed again: the safety number is new. Compare it before you decide.`
          : `${e.userId}'s security key changed. Compare safety numbers before you continue.`,
      );
      for (const group of sharedGroups(client, ctx.userId, e.userId)) {
        recordEvent(
          ctx,
          grp(group),
          e.userId,
          `${e.userId}'s security key changed. Until you accept or reject it in your conversation with ${e.userId}, what ${e.userId} sends under the new key is held.`,
        );
      }
    }),
    messagesHeld: guard('messagesHeld', (e: { userId: string; count: number }) => {
      // Held messages are announced on the contact (the banner's count); a decision reports itself.
      if (e.count > 0)
        void reportContact(ctx, client, e.userId).catch((err: unknown) => ctx.log(String(err)));
    }),
  };

  for (const [name, fn] of Object.entries(handlers)) client.on(name as 'connect', fn as () => void);
  return () => {
    groups.dispose();
    for (const [name, fn] of Object.entries(handlers)) client.off(name as 'connect', fn as () => void);
  };
}

type GroupLeave = { group: string; removedBy?: string | undefined; standing?: GroupStanding | undefined };

function notifyInvitation(ctx: BridgeContext, by: string, group: string): void {
  if (ctx.store.getSettings().notifications === 'none') return;
  ctx.notify({ title: 'Sealed', body: `${by} invited you to the group ${group}` });
}

/**
 * Reports groups whose state changed: a 'group' event with the new GroupInfo (or 'groupRemoved' once we
 * are off the roster), once per group and turn however many client events touched it. A group whose
 * member list stops (or starts again) agreeing with the other members' also gets a line saying so.
 */
class GroupReports {
  private readonly dirty = new Set<string>();
  /** The out-of-sync sentence last written into each group's conversation. */
  private readonly problems = new Map<string, string>();
  private scheduled = false;
  private disposed = false;

  constructor(
    private readonly client: E2EEClient,
    private readonly ctx: BridgeContext,
  ) {}

  changed(group: string): void {
    this.dirty.add(group);
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => this.flush());
  }

  dispose(): void {
    this.disposed = true;
  }

  private flush(): void {
    this.scheduled = false;
    const groups = [...this.dirty];
    this.dirty.clear();
    if (this.disposed || !this.ctx.store.unlocked) return;
    for (const group of groups) {
      try {
        this.report(group);
      } catch (e) {
        this.ctx.log(`group report failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  private report(group: string): void {
    const info = groupInfoOf(this.client, group, this.ctx.userId);
    const shown = this.problems.get(group);
    const conversation: ConversationId = `group:${group}`;
    if (info?.outOfSync && info.outOfSync !== shown) {
      this.problems.set(group, info.outOfSync);
      // Its own words first: the client's sentence may start with a user id, the line's subject is us.
      recordEvent(
        this.ctx,
        conversation,
        this.ctx.userId,
        `Member lists differ. ${info.outOfSync} Sending to the group is paused.`,
      );
    } else if (info && !info.outOfSync && shown !== undefined) {
      this.problems.delete(group);
      recordEvent(
        this.ctx,
        conversation,
        this.ctx.userId,
        "Your member list agrees with the other members' again. Sending is possible again.",
      );
    }
    this.ctx.emit(info ? { type: 'group', info } : { type: 'groupRemoved', group });
  }
}
