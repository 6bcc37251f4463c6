/**
 * One chat in a terminal: the client's events as lines, the commands' actions, the connection state.
 *
 * Commands are read from the first moment, connected or not (issue 7: they used to wait for the
 * first connection, /quit included). Local commands run at once; commands that need the relay wait
 * for it, in the order they were typed. A failing connection is explained once per kind of failure,
 * with what to check, while the prompt shows that it keeps trying.
 */
import { randomUUID } from 'node:crypto';
import { type E2EEClient, formatFingerprint, relayKeyFingerprint } from '../core/index.js';
import type { GroupDetails } from '../core/client/client.js';
import { parseInviteLink } from '../core/client/group-changes.js';
import {
  CryptoError,
  E2EEError,
  ErrorCode,
  ProtocolError,
  RelayError,
  RelayKeyChangedError,
} from '../core/errors.js';
import { type ChatActions, commandHelp, isInviteLink, parseCommand } from './commands.js';
import { connectionHint } from './connection-hints.js';
import { storageFaultReason, storageSentence } from '../services/storage-fault.js';
import type { StorageProblemReason } from '../shared/messenger-api.js';
import type { LineKind, Terminal } from './terminal.js';

/** A message sent in this run: the number the user saw and a preview, for its receipts. */
interface SentMessage {
  readonly n: number;
  readonly preview: string;
  /** Receipts that came before the relay's own acceptance was shown; printed right after it. */
  early: string[] | undefined;
  /** Where it goes, while the relay (out of storage) has not taken it yet: said again once it has. */
  kept?: string | undefined;
}

/** Ends the wait of commands still waiting for the relay when the chat quits: they do not run. */
class Quitting extends Error {}

/** Incoming message ids remembered to print each once: far more than a relay redelivers at a time. */
const SHOWN_IDS_KEPT = 10_000;

/** Relay refusals of the handshake after which the client stops trying. */
const FINAL_REFUSALS = new Set(['AUTH_FAILED', 'UNSUPPORTED_VERSION']);

/** Every this many failed attempts in a row, a line says that the chat is still trying. */
const STILL_TRYING_EVERY = 10;

/** At most this many characters of a message are repeated in the lines about it. */
const PREVIEW_CHARS = 40;

/** A message's first words, on one line (its spaces as typed), for the lines that refer to it. */
export function preview(text: string): string {
  const flat = text.replace(/[\t\n\r\v\f]+/g, ' ').trim();
  if (flat.length <= PREVIEW_CHARS) return flat;
  const cut = flat.slice(0, PREVIEW_CHARS - 1);
  const lastSpace = cut.lastIndexOf(' ');
  // Whole words when the first ones fit; a single long word is cut.
  return `${(lastSpace > PREVIEW_CHARS / 2 ? cut.slice(0, lastSpace) : cut).trimEnd()}…`;
}

/** Splits 60 safety-number digits into 12 groups of 5, four groups a row, as the app shows them. */
export function formatSafetyNumber(digits: string): string {
  const groups = digits.match(/\d{1,5}/g) ?? [];
  const rows: string[] = [];
  for (let i = 0; i < groups.length; i += 4) rows.push(groups.slice(i, i + 4).join(' '));
  return rows.join('\n');
}

/** Where the session is: the terminal, the client, how the chat was started, and how it ends. */
export interface ChatSessionOptions {
  readonly client: E2EEClient;
  readonly terminal: () => Terminal;
  readonly url: string;
  /** A relay key fingerprint the user accepts if the relay's key changed (--accept-relay-key). */
  readonly acceptRelayKey?: string | undefined;
  /** Closes the client's store and ends the process with `code`. */
  readonly exit: (code: number) => void;
  /**
   * Checks that the state file can be written again after a storage fault (SqliteStore.probeWrite);
   * throws when it cannot. Without it, a storage fault ends the chat.
   */
  readonly probeStorage?: (() => void) | undefined;
  /** How often the state file is checked again while it cannot be written (default 5 s). */
  readonly storageProbeMs?: number | undefined;
}

/** The chat: client events in, commands out. Call start() once. */
export class ChatSession implements ChatActions {
  private readonly client: E2EEClient;
  private readonly url: string;
  private term!: Terminal;
  private readonly sent = new Map<string, SentMessage>();
  /**
   * Groups this chat is joining now, and whether the outcome was printed: the client can announce our
   * own JOIN twice, once from the relay's copy and once from the command (see joinGroup).
   */
  private readonly joining = new Map<string, boolean>();
  /**
   * Incoming messages printed lately, by sender, group and id. The client delivers at least once: a
   * message shown just before its state failed to save (a full disk) comes again once it can be saved.
   */
  private readonly shown = new Set<string>();
  private sentCount = 0;
  private everConnected = false;
  private lastHint: string | undefined;
  private quitting: Promise<void> | undefined;
  private waiting = 0;
  /** The state file cannot be written (issue 11): delivery and sending are paused until it can. */
  private storage: StorageProblemReason | undefined;
  private storageTimer: NodeJS.Timeout | undefined;
  private connectedWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private readonly inflight = new Set<Promise<void>>();
  /** Commands run one after another, in the order typed: local ones, and those needing the relay. */
  private readonly queues = { local: Promise.resolve(), relay: Promise.resolve() };

  constructor(private readonly options: ChatSessionOptions) {
    this.client = options.client;
    this.url = options.url;
  }

  /** Opens the terminal, wires the client's events and starts connecting. */
  start(): void {
    this.term = this.options.terminal();
    this.wireEvents();
    this.term.setStatus('connecting');
    this.info(`Connecting to ${this.url} as ${this.client.userId}. Type /help for commands, /quit to leave.`);
    this.connectOnce();
  }

  private connectOnce(): void {
    this.client.connect().catch(async (e: unknown) => {
      if (this.quitting) return;
      const accept = this.options.acceptRelayKey;
      if (e instanceof RelayKeyChangedError && accept !== undefined && e.presentedFingerprint === accept) {
        await this.client.acceptRelayKey(e.presentedKey);
        this.info(
          `Accepted the relay's new key (fingerprint ${formatFingerprint(accept)}), as --accept-relay-key asked.`,
        );
        this.connectOnce();
        return;
      }
      // Only a final refusal (another identity holds this user id, another protocol version, a relay
      // key that changed or was not proven) ends here.
      this.error(this.refusal(e as Error));
      void this.quit(1);
    });
  }

  /** Handles one line the user typed. */
  onLine(line: string): void {
    if (this.quitting) return;
    let parsed;
    try {
      parsed = parseCommand(line);
    } catch (e) {
      this.error((e as Error).message);
      return;
    }
    if (!parsed) return;
    const { spec, args } = parsed;
    if (spec.runs === 'now') {
      void Promise.resolve(spec.run(this, args));
      return;
    }
    // Two queues, each in the order typed: local commands never wait behind the relay.
    if (spec.runs === 'local') {
      this.enqueue('local', () => spec.run(this, args), args);
      return;
    }
    if (this.storage) {
      // Nothing that changes the state file goes out while it cannot be written; the line is not kept.
      this.error(
        `${spec.name === '/send' || spec.name === '/dm' ? 'Not sent' : `${spec.name} not done`}: sending is paused. ${storageSentence(this.storage)}`,
      );
      return;
    }
    if (!this.client.connected) {
      // Through the local queue, so it prints after the answers of local commands typed before.
      this.enqueue('local', () =>
        this.info(`Not connected yet: ${spec.name} runs once the relay answers (/quit to give up).`),
      );
    }
    this.waiting++;
    this.enqueue(
      'relay',
      async () => {
        try {
          await this.whenConnected();
        } finally {
          this.waiting--;
        }
        await spec.run(this, args);
      },
      args,
    );
  }

  /** End of input: a pipe's commands finish first (a bot's last message is still sent), then quit. */
  async onEnd(): Promise<void> {
    if (!this.term.interactive) await Promise.allSettled([...this.inflight]);
    await this.quit();
  }

  // -------------------------------------------------------------------------------------------
  // Commands (ChatActions)

  async sendDirect(to: string, text: string): Promise<void> {
    try {
      await this.sendTracked(text, `to ${to}`, (id) => this.client.sendDirectMessage(to, text, { id }));
    } catch (e) {
      if (!(e instanceof E2EEError && e.code === ErrorCode.IDENTITY_CHANGED)) throw e;
      this.error(
        `Not sent: ${to}'s security key changed and waits for your decision (/safety ${to}, then /accept-key or /reject-key).`,
      );
    }
  }

  async sendGroup(group: string, text: string): Promise<void> {
    await this.sendTracked(text, `to ${group}`, (id) => this.client.sendGroupMessage(group, text, { id }));
  }

  // Group commands. What a membership change did is printed by the client's event for it (wireEvents),
  // the same line whether this chat made the change or learnt of it; a command prints only what the
  // event does not say (an invite link) and a refusal's sentence.

  async createGroup(group: string, policy: 'invite-only' | 'open'): Promise<void> {
    await this.client.createGroup(group, { policy });
  }

  async invite(group: string, userId: string): Promise<void> {
    await this.client.inviteToGroup(group, userId);
  }

  async accept(group: string): Promise<void> {
    await this.client.acceptGroupInvitation(group);
  }

  async decline(group: string): Promise<void> {
    const standing = this.myStanding(this.client.groupDetails(group));
    if (standing === 'member') {
      this.error(`You are a member of ${group}, not invited to it: /leave ${group} leaves it.`);
      return;
    }
    await this.client.declineGroupInvitation(group);
  }

  async joinGroup(groupOrLink: string): Promise<void> {
    let group = groupOrLink;
    if (isInviteLink(groupOrLink)) {
      let link: { relay: string; group: string };
      try {
        link = parseInviteLink(groupOrLink);
      } catch {
        this.error('That is not a whole invite link: copy all of it, from sealed:// to the end.');
        return;
      }
      if (!sameRelay(link.relay, this.url)) {
        this.error(
          `That invite link is for the relay ${link.relay}, and this chat is connected to ${this.url}: start a chat with --relay ${link.relay} to use it.`,
        );
        return;
      }
      group = link.group;
    }
    if (this.alreadyIn(group)) return;
    this.joining.set(group, false);
    try {
      if (group === groupOrLink) await this.client.joinGroup(group);
      else await this.client.joinGroupWithLink(groupOrLink);
    } finally {
      this.joining.delete(group);
    }
  }

  async makeLink(group: string, approval: boolean): Promise<void> {
    const link = await this.client.setGroupJoinPolicy(group, 'link', { approval });
    if (link)
      this.info(`The invite link to ${group}; share it only with people you want in ${group}:\n${link}`);
  }

  async setPolicy(group: string, policy: 'invite-only' | 'open'): Promise<void> {
    const details = this.client.groupDetails(group);
    if (details && details.policy === policy) {
      this.info(`${group} is already ${policy}: ${POLICY_MEANS[policy](group)}.`);
      return;
    }
    await this.client.setGroupJoinPolicy(group, policy);
  }

  async approve(group: string, userId: string): Promise<void> {
    await this.client.approveJoinRequest(group, userId);
  }

  async remove(group: string, userId: string): Promise<void> {
    await this.client.removeFromGroup(group, userId);
  }

  async setRole(group: string, userId: string, role: 'admin' | 'member'): Promise<void> {
    await this.client.setGroupRole(group, userId, role);
  }

  async leaveGroup(group: string): Promise<void> {
    await this.client.leaveGroup(group);
  }

  async deleteGroup(group: string): Promise<void> {
    await this.client.deleteGroup(group);
  }

  async members(group: string): Promise<void> {
    const details = await this.details(group);
    if (!details) return;
    const count = (standing: string): number => details.roster.filter((m) => m.standing === standing).length;
    const parts = [plural(count('member'), 'member')];
    if (count('invited') > 0) parts.push(`${count('invited')} invited`);
    if (count('requested') > 0) parts.push(`${count('requested')} asking to join`);
    const who = (userId: string): string => (userId === this.client.userId ? `${userId} (you)` : userId);
    const width = Math.max(...details.roster.map((m) => who(m.userId).length)) + 2;
    const rows = details.roster.map((m) => {
      const what =
        m.standing === 'invited'
          ? 'invited, has not accepted yet'
          : m.standing === 'requested'
            ? `asks to join (/approve ${group} ${m.userId})`
            : m.role;
      return `${who(m.userId).padEnd(width)}${what}`;
    });
    this.info(`${group}: ${parts.join(', ')}\n${rows.join('\n')}`);
  }

  async groupInfo(group: string): Promise<void> {
    const d = await this.details(group);
    if (!d) return;
    const members = d.roster.filter((m) => m.standing === 'member').length;
    const lines = [
      `${group} is ${POLICY_IS[d.policy]}: ${POLICY_MEANS[d.policy](group, d.approval)}. Created by ${d.creator}; ${plural(members, 'member')}; ${STANDING_SAYS[this.myStanding(d) ?? 'member'](group)}.`,
    ];
    if (d.link) lines.push(`Your invite link to ${group}:\n${d.link}`);
    lines.push(
      `Safety number of ${group} (it changes with every membership change); members who see the same number have the same member list:\n${formatSafetyNumber(d.safetyNumber)}`,
    );
    this.info(lines.join('\n'));
    if (d.outOfSync) this.error(outOfSyncLine(group, d.outOfSync.message));
  }

  async listGroups(): Promise<void> {
    await this.client.publicIdentity(); // loads the local state if no connection did yet
    const groups = this.client
      .listGroups()
      .map((g) => this.client.groupDetails(g.group))
      .filter((d): d is GroupDetails => d !== undefined)
      .sort((a, b) => a.group.localeCompare(b.group));
    if (groups.length === 0) {
      this.info(
        'You are in no group yet: /create G starts one; /join G joins an open one, /join LINK one with its invite link.',
      );
      return;
    }
    const lines = groups.map((d) => {
      const members = d.roster.filter((m) => m.standing === 'member').map((m) => m.userId);
      const sync = d.outOfSync ? `; out of sync, see /group ${d.group}` : '';
      return `${d.group} (created by ${d.creator}; ${STANDING_SAYS[this.myStanding(d) ?? 'member'](d.group)}${sync}): ${members.join(', ')}`;
    });
    this.info(`Your groups:\n${lines.join('\n')}`);
  }

  async safety(userId: string): Promise<void> {
    await this.client.publicIdentity();
    if (userId === this.client.userId) {
      this.error(`That is you: a safety number is shared with a contact, e.g. /safety bob.`);
      return;
    }
    const pending = await this.client.pendingSafetyNumber(userId);
    if (pending) {
      this.error(
        `${userId}'s security key changed. The safety number with the new key; compare it with ${userId} before you trust it:\n${formatSafetyNumber(pending)}\n${this.heldLine(userId)}Then /accept-key ${userId} followed by this number, or /reject-key ${userId}.`,
      );
      return;
    }
    const digits = this.client.safetyNumber(userId);
    if (!digits) {
      this.error(
        `You have no contact ${userId} yet, so there is no safety number: it exists once you have exchanged a message (/dm ${userId} TEXT).`,
      );
      return;
    }
    this.info(
      `Safety number with ${userId}; compare it with the one ${userId} sees, in person or on a call:\n${formatSafetyNumber(digits)}`,
    );
  }

  async acceptKey(userId: string, safetyNumber: string): Promise<void> {
    await this.client.publicIdentity();
    const digits = safetyNumber.replace(/\s+/g, '');
    if (!/^\d{60}$/.test(digits)) {
      this.error(
        `A safety number is the 60 digits /safety ${userId} shows (the spaces between groups may stay).`,
      );
      return;
    }
    if (!this.client.identityChangePending(userId)) {
      this.error(`No new security key of ${userId} is waiting for your decision.`);
      return;
    }
    let released: number;
    try {
      ({ released } = await this.client.approveIdentity(userId, digits));
    } catch (e) {
      if (!(e instanceof E2EEError && e.code === ErrorCode.SAFETY_NUMBER_MISMATCH)) throw e;
      const now = (await this.client.pendingSafetyNumber(userId)) ?? '';
      this.error(
        `That is not the safety number of ${userId}'s new key: the key changed again since. Nothing was accepted. Compare this one with ${userId} before you decide:\n${formatSafetyNumber(now)}`,
      );
      return;
    }
    const shown =
      released === 0
        ? ''
        : ` The ${released === 1 ? 'message' : `${released} messages`} it held ${released === 1 ? 'is' : 'are'} shown above.`;
    this.info(`You accepted ${userId}'s new security key; you can write to ${userId} again.${shown}`);
  }

  async rejectKey(userId: string): Promise<void> {
    await this.client.publicIdentity();
    if (!this.client.identityChangePending(userId)) {
      this.error(`No new security key of ${userId} is waiting for your decision.`);
      return;
    }
    const dropped = await this.client.rejectIdentity(userId);
    const deleted =
      dropped === 0
        ? ''
        : ` The ${dropped === 1 ? 'message' : `${dropped} messages`} sent under it ${dropped === 1 ? 'was' : 'were'} deleted unread.`;
    this.info(
      `You rejected ${userId}'s new security key: your messages stay with the key you had.${deleted}`,
    );
  }

  help(): void {
    this.info(`Commands:\n${commandHelp()}`);
  }

  /** "N messages from USER are held…" and a line break, or nothing when none are. */
  private heldLine(userId: string): string {
    const n = this.client.heldMessageCount(userId);
    if (n === 0) return '';
    return `${n === 1 ? '1 message' : `${n} messages`} from ${userId} under the new key ${n === 1 ? 'is' : 'are'} held until you decide.\n`;
  }

  /** Closes the connection and ends the process; commands still waiting for the relay are dropped. */
  quit(code = 0): Promise<void> {
    clearInterval(this.storageTimer);
    this.quitting ??= (async () => {
      const dropped = this.waiting;
      for (const w of this.connectedWaiters.splice(0)) w.reject(new Quitting());
      this.term.close();
      if (dropped > 0)
        this.error(`${dropped} command${dropped === 1 ? '' : 's'} did not run: the relay never answered.`);
      // A relay that does not answer the close handshake must not keep the process alive.
      await Promise.race([this.client.close(), new Promise((r) => setTimeout(r, 3000).unref())]);
      this.options.exit(code);
    })();
    return this.quitting;
  }

  // -------------------------------------------------------------------------------------------

  private info(text: string): void {
    this.term.print('info', text);
  }

  private error(text: string): void {
    this.term.print('error', text);
  }

  /** Prints an incoming message once, however often the client delivers it (see `shown`). */
  private incoming(m: { id: string; from: string; group?: string }, text: string): void {
    const key = JSON.stringify([m.group ?? '', m.from, m.id]);
    if (this.shown.has(key)) return;
    this.shown.add(key);
    if (this.shown.size > SHOWN_IDS_KEPT) this.shown.delete(this.shown.values().next().value!);
    this.line('incoming', text);
  }

  private line(kind: LineKind, text: string): void {
    this.term.print(kind, text);
  }

  /**
   * Runs `task` after the queue's earlier commands, printing its failure as an error line (`names`:
   * the command's arguments, kept as typed when the sentence starts with one).
   */
  private enqueue(
    queue: 'local' | 'relay',
    task: () => Promise<void> | void,
    names: readonly string[] = [],
  ): void {
    const p = this.queues[queue].then(task).then(
      () => undefined,
      (e: unknown) => {
        if (e instanceof Quitting) return;
        this.error(this.describe(e as Error, names));
      },
    );
    this.queues[queue] = p;
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  /**
   * A write of the state file failed (a full disk, a read-only folder, a damaged file): says so once,
   * closes the connection (what was not stored was not acknowledged: the relay keeps it and brings it
   * again) and checks the file every few seconds; once it can be written, says so and reconnects.
   * Without a way to check it, the chat ends. True if `e` was such a failure.
   */
  private storageFault(e: unknown): boolean {
    const reason = storageFaultReason(e);
    if (!reason) return false;
    if (this.storage || this.quitting) return true;
    this.storage = reason;
    this.error(`${storageSentence(reason)} Sending is paused.`);
    this.term.setStatus('paused: cannot save');
    void this.client.close().catch(() => undefined);
    const probe = this.options.probeStorage;
    if (!probe) {
      void this.quit(1);
      return true;
    }
    this.storageTimer = setInterval(() => {
      try {
        probe();
      } catch {
        return; // still not writable
      }
      clearInterval(this.storageTimer);
      this.storageTimer = undefined;
      this.storage = undefined;
      this.info('The state file can be written again: receiving and sending resume.');
      this.term.setStatus('connecting');
      this.connectOnce();
    }, this.options.storageProbeMs ?? 5000);
    this.storageTimer.unref();
    return true;
  }

  private whenConnected(): Promise<void> {
    if (this.quitting) return Promise.reject(new Quitting());
    if (this.client.connected) return Promise.resolve();
    return new Promise((resolve, reject) => this.connectedWaiters.push({ resolve, reject }));
  }

  /** Sends with an id chosen here, so receipts name the number the user saw. */
  private async sendTracked(
    text: string,
    where: string,
    send: (id: string) => Promise<string>,
  ): Promise<void> {
    const id = randomUUID();
    const message: SentMessage = { n: ++this.sentCount, preview: preview(text), early: [] };
    this.sent.set(id, message);
    try {
      await send(id);
    } catch (e) {
      if (e instanceof RelayError && e.relayCode === 'STORAGE_UNAVAILABLE') {
        // The client keeps it and sends it again on the next connection; its 'sent' ack says so.
        message.kept = where;
        message.early = undefined;
        this.info(
          `#${message.n} ${where} is kept: the relay is out of storage. It goes out by itself once the relay has room again.`,
        );
        return;
      }
      this.sent.delete(id);
      const reason = storageFaultReason(e);
      if (reason && this.storageFault(e))
        throw new Error(`Not sent: sending is paused. ${storageSentence(reason)}`, { cause: e });
      throw e;
    }
    this.line('outgoing', `#${message.n} ${where}: ${message.preview}`);
    for (const receipt of message.early ?? []) this.info(receipt);
    message.early = undefined;
  }

  /** Our group's details, with the local state loaded; undefined (and a sentence) if we are not on it. */
  private async details(group: string): Promise<GroupDetails | undefined> {
    await this.client.publicIdentity(); // loads the local state if no connection did yet
    const d = this.client.groupDetails(group);
    if (!d)
      this.error(
        `You are not in ${group}: neither a member, nor invited, nor asking to join. /groups lists yours.`,
      );
    return d;
  }

  private myStanding(d: GroupDetails | undefined): 'admin' | 'member' | 'invited' | 'requested' | undefined {
    const me = d?.roster.find((m) => m.userId === this.client.userId);
    if (!me) return undefined;
    return me.standing === 'member' ? me.role : me.standing;
  }

  /**
   * True when the outcome of our own /join of `group` was printed already. E2EEClient.joinGroup and
   * joinGroupWithLink announce our JOIN when they apply it, and so does the relay's copy of the entry,
   * which arrives first (group-changes.ts `join` does not check whether it was taken in meanwhile).
   */
  private joinAnnounced(group: string): boolean {
    const printed = this.joining.get(group);
    if (printed === undefined) return false;
    this.joining.set(group, true);
    return printed;
  }

  /** Says so, and returns true, when we are on the group's roster already (a /join then changes nothing). */
  private alreadyIn(group: string): boolean {
    const d = this.client.groupDetails(group);
    const standing = this.myStanding(d);
    if (!d || !standing) return false;
    if (standing === 'invited') this.info(`You are invited to ${group}: /accept ${group} joins it.`);
    else if (standing === 'requested')
      this.info(`You already asked to join ${group}; an admin of ${group} must let you in.`);
    else {
      const members = d.roster.filter((m) => m.standing === 'member').map((m) => m.userId);
      this.info(`You are already a member of ${group} (${members.join(', ')}).`);
    }
    return true;
  }

  /**
   * An error as one sentence for the user: a capital first letter, unless the sentence starts with a
   * user id or group name (`names`), which are case-sensitive.
   */
  private describe(e: Error, names: readonly string[] = []): string {
    if (e instanceof RelayError) return e.message;
    const message = e.message.replace(/\.$/, '');
    const first = /^[A-Za-z0-9._-]*/.exec(message)![0];
    if (names.includes(first)) return `${message}.`;
    return `${message.charAt(0).toUpperCase()}${message.slice(1)}.`;
  }

  private refusal(e: Error): string {
    const user = this.client.userId;
    if (e instanceof RelayError && e.relayCode === 'AUTH_FAILED')
      return `The relay refused ${user}: that user id is registered there with another key, which this state folder does not hold. Start with the --state folder that does, or choose another --user.`;
    if (e instanceof RelayError && e.relayCode === 'UNSUPPORTED_VERSION')
      return 'The relay speaks another version of the protocol: update this checkout or the relay.';
    if (e instanceof E2EEError && e.code === ErrorCode.UNTRUSTED_CERTIFICATE && e.cause instanceof Error)
      return connectionHint(this.url, e.cause).text;
    if (e instanceof RelayKeyChangedError)
      return [
        `The relay at ${this.url} is not the one you used before: its key changed, so the chat did not log in and sent nothing.`,
        `  key the first time: ${formatFingerprint(e.pinnedFingerprint)}`,
        `  key now:            ${formatFingerprint(e.presentedFingerprint)}`,
        'This happens when the relay was reinstalled or lost its data folder, but it can also be someone pretending to be it.',
        `Ask the relay's operator for the fingerprint npm run relay printed; only if it is the new one, start again with --accept-relay-key ${e.presentedFingerprint}`,
      ].join('\n');
    if (e instanceof CryptoError || e instanceof ProtocolError)
      return `The relay at ${this.url} could not prove its key (${e.message}), so the chat did not log in.`;
    return `Cannot connect to ${this.url}: ${this.describe(e)}`;
  }

  private wireEvents(): void {
    const c = this.client;
    c.on('connect', () => {
      this.info(
        this.everConnected ? `Reconnected to ${this.url}.` : `Connected to ${this.url} as ${c.userId}.`,
      );
      if (!this.everConnected)
        void c.pinnedRelayKey().then((key) => {
          if (key)
            this.info(
              `Relay key fingerprint: ${formatFingerprint(relayKeyFingerprint(key))} (the operator's npm run relay shows it; compare them once).`,
            );
        });
      this.everConnected = true;
      this.lastHint = undefined;
      this.term.setStatus(undefined);
      for (const w of this.connectedWaiters.splice(0)) w.resolve();
    });
    c.on('disconnect', ({ code, reason }) => {
      if (this.quitting || this.storage) return; // paused: storageFault() said why
      if (code === 1000 && reason === 'replaced') {
        this.error(
          `Another session of ${c.userId} connected to this relay, so the relay closed this one; it does not reconnect.`,
        );
        void this.quit(1);
        return;
      }
      this.error(
        `Lost the connection to the relay (code ${code}${reason ? `, ${reason}` : ''}); reconnecting.`,
      );
      this.term.setStatus('reconnecting');
    });
    c.on('reconnecting', ({ attempt, delayMs }) => {
      if (this.quitting) return;
      const seconds = Math.max(1, Math.round(delayMs / 1000));
      this.term.setStatus(`${this.everConnected ? 'reconnecting' : 'connecting'}, attempt ${attempt + 1}`);
      if (attempt % STILL_TRYING_EVERY === 0)
        this.info(`Still trying to reach ${this.url}: ${attempt} attempts so far, the next in ${seconds} s.`);
    });
    c.on('error', (e) => {
      if (this.quitting) return;
      if (this.storageFault(e)) return;
      // A final refusal also rejects connect(), which explains it (start()).
      if (e instanceof RelayError && FINAL_REFUSALS.has(e.relayCode)) return;
      if (e instanceof E2EEError && e.code === ErrorCode.UNTRUSTED_CERTIFICATE) return;
      if (!c.connected && (e instanceof CryptoError || e instanceof ProtocolError)) return;
      if (c.connected) {
        this.error(this.describe(e));
        return;
      }
      const hint = connectionHint(this.url, e);
      if (hint.kind === this.lastHint) return;
      this.lastHint = hint.kind;
      this.error(`${hint.text} Still trying; /quit to stop.`);
    });
    c.on('e2eeError', (e) =>
      this.error(
        e.group && !e.from
          ? `A problem with group ${e.group}: ${e.message} [${e.code}]`
          : `Could not decrypt a message${e.from ? ` from ${e.from}` : ''}${e.group ? ` in ${e.group}` : ''}: ${e.message} [${e.code}]`,
      ),
    );
    c.on('message', (m) => this.incoming(m, `${m.from}: ${m.text}`));
    c.on('binaryMessage', (m) => this.incoming(m, `${m.from}: (a file of ${m.data.length} bytes)`));
    c.on('groupMessage', (m) => this.incoming(m, `${m.from} in ${m.group}: ${m.text}`));
    c.on('groupBinaryMessage', (m) =>
      this.incoming(m, `${m.from} in ${m.group}: (a file of ${m.data.length} bytes)`),
    );
    c.on('ack', (a) => {
      const m = this.sent.get(a.id);
      if (a.state === 'sent' && m?.kept !== undefined) {
        this.line('outgoing', `#${m.n} ${m.kept}: ${m.preview}`);
        m.kept = undefined;
        return;
      }
      if (a.state !== 'delivered') return;
      const to = a.group ? `${a.to} in ${a.group}` : a.to;
      if (!m) {
        this.info(`A message sent before this session was delivered to ${to}.`);
        return;
      }
      const receipt = `#${m.n} delivered to ${to}: ${m.preview}`;
      // A recipient can confirm before our client has resolved the send: keep "sent" first.
      if (m.early) m.early.push(receipt);
      else this.info(receipt);
    });
    c.on('userCreated', (e) => this.info(`${e.userId} joined this relay.`));
    c.on('userDeleted', (e) => this.info(`${e.userId} deleted their account.`));
    this.wireGroupEvents();
    c.on('identityChanged', (e) =>
      this.error(
        `${e.userId}'s security key changed. Until you decide, nothing goes to ${e.userId} and what comes under the new key is held. Compare this safety number with ${e.userId} (in person or on a call):\n${formatSafetyNumber(e.safetyNumber)}\nThen /accept-key ${e.userId} followed by this number, or /reject-key ${e.userId}.`,
      ),
    );
    c.on('messagesHeld', (e) => {
      if (e.count > 0)
        this.info(
          `${e.count === 1 ? '1 message' : `${e.count} messages`} from ${e.userId} under the new key ${e.count === 1 ? 'is' : 'are'} held until you /accept-key or /reject-key it.`,
        );
    });
  }

  /**
   * One line per membership event, the same whoever made the change: "You ..." for this chat's own
   * changes, the author's name otherwise.
   */
  private wireGroupEvents(): void {
    const c = this.client;
    const me = c.userId;
    const who = (userId: string): string => (userId === me ? 'You' : userId);
    const whom = (userId: string): string => (userId === me ? 'you' : userId);
    c.on('groupCreated', ({ group }) => {
      const d = c.groupDetails(group);
      this.info(
        d?.policy === 'open'
          ? `Created group ${group}, you its admin. It is open: anyone who knows its name can join with /join ${group}.`
          : `Created group ${group}, you its admin. It is invite-only: /invite ${group} USER invites someone, /link ${group} makes an invite link.`,
      );
    });
    c.on('groupInvitation', ({ group, by }) =>
      this.info(`${by} invited you to ${group}: /accept ${group} joins it, /decline ${group} declines.`),
    );
    c.on('groupMemberInvited', ({ group, userId, by }) =>
      this.info(
        by === me
          ? `You invited ${userId} to ${group}; they join once they accept.`
          : `${by} invited ${userId} to ${group}.`,
      ),
    );
    c.on('groupJoinRequest', ({ group, userId }) => {
      if (userId === me) {
        if (this.joinAnnounced(group)) return;
        this.info(`You asked to join ${group} with its invite link; an admin of ${group} must let you in.`);
        return;
      }
      const admin = this.myStanding(c.groupDetails(group)) === 'admin';
      this.info(
        admin
          ? `${userId} asks to join ${group} with its invite link: /approve ${group} ${userId} lets them in, /remove ${group} ${userId} turns them away.`
          : `${userId} asks to join ${group} with its invite link; an admin decides.`,
      );
    });
    c.on('groupJoin', ({ group, members }) => {
      if (this.joinAnnounced(group)) return;
      this.info(`You are now a member of ${group}; members: ${members.join(', ')}.`);
    });
    c.on('groupMemberJoin', ({ group, userId, by }) => {
      if (!by || by === userId) this.info(`${userId} joined ${group}.`);
      else if (by === me) this.info(`You let ${userId} into ${group}.`);
      else this.info(`${userId} joined ${group}, let in by ${by}.`);
    });
    c.on('groupLeave', ({ group, removedBy, standing }) => {
      if (removedBy) {
        if (standing === 'invited') this.info(`${removedBy} withdrew your invitation to ${group}.`);
        else if (standing === 'requested')
          this.info(`${removedBy} turned down your request to join ${group}.`);
        else this.info(`${removedBy} removed you from ${group}: you no longer get its messages.`);
      } else if (standing === 'invited') this.info(`You declined the invitation to ${group}.`);
      else if (standing === 'requested') this.info(`You withdrew your request to join ${group}.`);
      else this.info(`You left ${group}.`);
    });
    c.on('groupMemberLeave', ({ group, userId, removedBy, standing }) => {
      if (removedBy) {
        if (standing === 'invited')
          this.info(`${who(removedBy)} withdrew ${userId}'s invitation to ${group}.`);
        else if (standing === 'requested')
          this.info(`${who(removedBy)} turned down ${userId}'s request to join ${group}.`);
        else this.info(`${who(removedBy)} removed ${userId} from ${group}.`);
      } else if (standing === 'invited') this.info(`${userId} declined the invitation to ${group}.`);
      else if (standing === 'requested') this.info(`${userId} withdrew their request to join ${group}.`);
      else this.info(`${userId} left ${group}.`);
    });
    c.on('groupRoleChanged', ({ group, userId, role, by }) =>
      this.info(
        role === 'admin'
          ? `${who(by)} made ${whom(userId)} an admin of ${group}.`
          : `${who(by)} made ${whom(userId)} a member of ${group}, no longer an admin.`,
      ),
    );
    c.on('groupPolicyChanged', ({ group, policy, approval, linkChanged, by }) => {
      if (policy === 'link') {
        this.info(
          `${who(by)} made a new invite link to ${group}: ${POLICY_MEANS.link(group, approval)}; any earlier link no longer works.`,
        );
        return;
      }
      const revoked = linkChanged ? ' Its invite link no longer works.' : '';
      this.info(`${who(by)} made ${group} ${policy}: ${POLICY_MEANS[policy](group)}.${revoked}`);
    });
    c.on('groupDeleted', ({ group, by }) =>
      this.info(by ? `${who(by)} deleted group ${group}.` : `Group ${group} was deleted.`),
    );
    c.on('groupOutOfSync', ({ group }) => {
      const message = c.groupDetails(group)?.outOfSync?.message;
      if (message) this.error(outOfSyncLine(group, message));
    });
  }
}

/** What each join policy means, as the group lines say it. */
const POLICY_MEANS = {
  'invite-only': (_group: string) => 'only people an admin invites can join',
  open: (group: string) => `anyone who knows its name can join with /join ${group}`,
  link: (_group: string, approval = false) =>
    approval
      ? 'whoever has the link can ask to join, and an admin lets each in'
      : 'whoever has the link can join',
} as const;

/** Each join policy's name in a sentence ("team is ..."). */
const POLICY_IS = {
  'invite-only': 'invite-only',
  open: 'open',
  link: 'joined with its invite link',
} as const;

/** Our standing in a group, as the group lines say it. */
const STANDING_SAYS = {
  admin: (_group: string) => 'you are an admin',
  member: (_group: string) => 'you are a member',
  invited: (group: string) => `you are invited: /accept ${group} or /decline ${group}`,
  requested: (_group: string) => 'you asked to join, an admin must let you in',
} as const;

/** The warning for a group whose member list may differ from the others'. */
function outOfSyncLine(group: string, sentence: string): string {
  return `${sentence} Until this is resolved you cannot send to ${group}.`;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The same relay address, written either way (a trailing slash, upper-case host). */
function sameRelay(a: string, b: string): boolean {
  try {
    return new URL(a).href === new URL(b).href;
  } catch {
    return a === b;
  }
}
