/**
 * One chat in a terminal: the client's events as lines, the commands' actions, the connection state.
 *
 * Commands are read from the first moment, connected or not (issue 7: they used to wait for the
 * first connection, /quit included). Local commands run at once; commands that need the relay wait
 * for it, in the order they were typed. A failing connection is explained once per kind of failure,
 * with what to check, while the prompt shows that it keeps trying.
 */
import { randomUUID } from 'node:crypto';
import type { E2EEClient } from '../core/index.js';
import { ErrorCode, E2EEError, RelayError } from '../core/errors.js';
import { type ChatActions, commandHelp, parseCommand } from './commands.js';
import { connectionHint } from './connection-hints.js';
import type { LineKind, Terminal } from './terminal.js';

/** A message sent in this run: the number the user saw and a preview, for its receipts. */
interface SentMessage {
  readonly n: number;
  readonly preview: string;
  /** Receipts that came before the relay's own acceptance was shown; printed right after it. */
  early: string[] | undefined;
}

/** Ends the wait of commands still waiting for the relay when the chat quits: they do not run. */
class Quitting extends Error {}

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
  /** Closes the client's store and ends the process with `code`. */
  readonly exit: (code: number) => void;
}

/** The chat: client events in, commands out. Call start() once. */
export class ChatSession implements ChatActions {
  private readonly client: E2EEClient;
  private readonly url: string;
  private term!: Terminal;
  private readonly sent = new Map<string, SentMessage>();
  private sentCount = 0;
  /** Group events our own commands cause: their command prints the confirmation instead. */
  private readonly ownEvents = new Map<string, number>();
  private everConnected = false;
  private lastHint: string | undefined;
  private quitting: Promise<void> | undefined;
  private waiting = 0;
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
    this.client.connect().catch((e: unknown) => {
      if (this.quitting) return;
      // Only a final refusal (another identity holds this user id, another protocol version) ends here.
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
      this.enqueue('local', () => spec.run(this, args));
      return;
    }
    if (!this.client.connected) {
      // Through the local queue, so it prints after the answers of local commands typed before.
      this.enqueue('local', () =>
        this.info(`Not connected yet: ${spec.name} runs once the relay answers (/quit to give up).`),
      );
    }
    this.waiting++;
    this.enqueue('relay', async () => {
      try {
        await this.whenConnected();
      } finally {
        this.waiting--;
      }
      await spec.run(this, args);
    });
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
        `Not sent: ${to}'s security key changed and waits for your decision (/safety ${to}, then /accept or /reject).`,
      );
    }
  }

  async sendGroup(group: string, text: string): Promise<void> {
    await this.sendTracked(text, `to ${group}`, (id) => this.client.sendGroupMessage(group, text, { id }));
  }

  async createGroup(group: string): Promise<void> {
    await this.ownAction(`groupCreated:${group}`, () => this.client.createGroup(group));
    this.info(`Created group ${group}; others join it with /join ${group}.`);
  }

  async joinGroup(group: string): Promise<void> {
    const mine = this.client.listGroups().find((g) => g.group === group);
    if (mine?.members.includes(this.client.userId)) {
      this.info(`You are already a member of ${group} (${mine.members.join(', ')}).`);
      return;
    }
    const { members } = await this.ownAction(`groupJoin:${group}`, () => this.client.joinGroup(group));
    this.info(`Joined ${group}; members: ${members.join(', ')}.`);
  }

  async leaveGroup(group: string): Promise<void> {
    await this.ownAction(`groupLeave:${group}`, () => this.client.leaveGroup(group));
    this.info(`Left ${group}.`);
  }

  async deleteGroup(group: string): Promise<void> {
    await this.ownAction(`groupDeleted:${group}`, () => this.client.deleteGroup(group));
    this.info(`Deleted group ${group}.`);
  }

  async members(group: string): Promise<void> {
    const members = await this.client.groupMembers(group);
    this.info(`Members of ${group}: ${members.join(', ')}.`);
  }

  async listGroups(): Promise<void> {
    await this.client.publicIdentity(); // loads the local state if no connection did yet
    const groups = this.client.listGroups().filter((g) => g.members.includes(this.client.userId));
    if (groups.length === 0) {
      this.info('You are in no group yet: /create G starts one, /join G joins one.');
      return;
    }
    const lines = groups.map((g) => `${g.group} (created by ${g.creator}): ${g.members.join(', ')}`);
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
        `${userId}'s security key changed. The safety number with the new key; compare it with ${userId} before you trust it:\n${formatSafetyNumber(pending)}\n${this.heldLine(userId)}Then /accept ${userId} followed by this number, or /reject ${userId}.`,
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

  async accept(userId: string, safetyNumber: string): Promise<void> {
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

  async reject(userId: string): Promise<void> {
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

  private line(kind: LineKind, text: string): void {
    this.term.print(kind, text);
  }

  /** Runs `task` after the queue's earlier commands, printing its failure as an error line. */
  private enqueue(queue: 'local' | 'relay', task: () => Promise<void> | void): void {
    const p = this.queues[queue].then(task).then(
      () => undefined,
      (e: unknown) => {
        if (e instanceof Quitting) return;
        this.error(this.describe(e as Error));
      },
    );
    this.queues[queue] = p;
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
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
      this.sent.delete(id);
      throw e;
    }
    this.line('outgoing', `#${message.n} ${where}: ${message.preview}`);
    for (const receipt of message.early ?? []) this.info(receipt);
    message.early = undefined;
  }

  /** Runs a group command whose own event the command confirms; the event then prints nothing. */
  private async ownAction<T>(key: string, run: () => Promise<T>): Promise<T> {
    this.ownEvents.set(key, (this.ownEvents.get(key) ?? 0) + 1);
    try {
      return await run();
    } catch (e) {
      this.consumeOwn(key);
      throw e;
    }
  }

  private consumeOwn(key: string): boolean {
    const n = this.ownEvents.get(key) ?? 0;
    if (n === 0) return false;
    if (n === 1) this.ownEvents.delete(key);
    else this.ownEvents.set(key, n - 1);
    return true;
  }

  /** An error as one sentence for the user. */
  private describe(e: Error): string {
    if (e instanceof RelayError) return e.message;
    const message = e.message.replace(/\.$/, '');
    return `${message.charAt(0).toUpperCase()}${message.slice(1)}.`;
  }

  private refusal(e: Error): string {
    const user = this.client.userId;
    if (e instanceof RelayError && e.relayCode === 'AUTH_FAILED')
      return `The relay refused ${user}: that user id is registered there with another key, which this state folder does not hold. Start with the --state folder that does, or choose another --user.`;
    if (e instanceof RelayError && e.relayCode === 'UNSUPPORTED_VERSION')
      return 'The relay speaks another version of the protocol: update this checkout or the relay.';
    return `Cannot connect to ${this.url}: ${this.describe(e)}`;
  }

  private wireEvents(): void {
    const c = this.client;
    c.on('connect', () => {
      this.info(
        this.everConnected ? `Reconnected to ${this.url}.` : `Connected to ${this.url} as ${c.userId}.`,
      );
      this.everConnected = true;
      this.lastHint = undefined;
      this.term.setStatus(undefined);
      for (const w of this.connectedWaiters.splice(0)) w.resolve();
    });
    c.on('disconnect', ({ code, reason }) => {
      if (this.quitting) return;
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
      // A final refusal also rejects connect(), which explains it (start()).
      if (e instanceof RelayError && FINAL_REFUSALS.has(e.relayCode)) return;
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
      this.error(`Could not decrypt a message${e.from ? ` from ${e.from}` : ''}: ${e.message} [${e.code}]`),
    );
    c.on('message', (m) => this.line('incoming', `${m.from}: ${m.text}`));
    c.on('binaryMessage', (m) => this.line('incoming', `${m.from}: (a file of ${m.data.length} bytes)`));
    c.on('groupMessage', (m) => this.line('incoming', `${m.from} in ${m.group}: ${m.text}`));
    c.on('groupBinaryMessage', (m) =>
      this.line('incoming', `${m.from} in ${m.group}: (a file of ${m.data.length} bytes)`),
    );
    c.on('ack', (a) => {
      if (a.state !== 'delivered') return;
      const m = this.sent.get(a.id);
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
    c.on('groupCreated', (e) => {
      if (!this.consumeOwn(`groupCreated:${e.group}`)) this.info(`Created group ${e.group}.`);
    });
    c.on('groupDeleted', (e) => {
      if (!this.consumeOwn(`groupDeleted:${e.group}`))
        this.info(`Group ${e.group} was deleted by its creator.`);
    });
    c.on('groupJoin', (e) => {
      if (!this.consumeOwn(`groupJoin:${e.group}`))
        this.info(`Joined ${e.group}; members: ${e.members.join(', ')}.`);
    });
    c.on('groupLeave', (e) => {
      if (!this.consumeOwn(`groupLeave:${e.group}`)) this.info(`Left ${e.group}.`);
    });
    c.on('groupMemberJoin', (e) => this.info(`${e.userId} joined ${e.group}.`));
    c.on('groupMemberLeave', (e) => this.info(`${e.userId} left ${e.group}.`));
    c.on('identityChanged', (e) =>
      this.error(
        `${e.userId}'s security key changed. Until you decide, nothing goes to ${e.userId} and what comes under the new key is held. Compare this safety number with ${e.userId} (in person or on a call):\n${formatSafetyNumber(e.safetyNumber)}\nThen /accept ${e.userId} followed by this number, or /reject ${e.userId}.`,
      ),
    );
    c.on('messagesHeld', (e) => {
      if (e.count > 0)
        this.info(
          `${e.count === 1 ? '1 message' : `${e.count} messages`} from ${e.userId} under the new key ${e.count === 1 ? 'is' : 'are'} held until you /accept or /reject it.`,
        );
    });
  }
}
