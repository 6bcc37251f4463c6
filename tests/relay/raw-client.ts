/**
 * A minimal relay client for tests: speaks the wire protocol frame by frame over a real WebSocket,
 * validates every frame the relay sends against the RelayFrame schema (violations are recorded), and
 * lets a test await frames by predicate.
 */
import { randomUUID } from 'node:crypto';
import { WebSocket } from 'ws';
import { Identity, encodePublicIdentity } from '../../src-main/core/crypto/identity.js';
import { VerifyKey } from '../../src-main/core/crypto/primitives.js';
import {
  EntryAuthor,
  JoinPolicy,
  type GroupLog,
  applyEntry,
  decodeEntry,
  startLog,
} from '../../src-main/core/crypto/membership.js';
import type { SigningKeyPair } from '../../src-main/core/crypto/primitives.js';
import {
  challengeSignatureInput,
  deleteAccountSignatureInput,
  loginSignatureInput,
  normaliseRelayUrl,
} from '../../src-main/core/protocol/login.js';
import { RelayFrame, WIRE_VERSION, b64, parseFrame, unb64 } from '../../src-main/core/protocol/wire.js';

export type Frame = RelayFrame;
export type Deliver = Extract<Frame, { t: 'deliver' }>;
export type Ready = Extract<Frame, { t: 'ready' }>;
/** A reply to a request; `ok` replies carry request-specific fields beside t and rid. */
export type Reply = Extract<Frame, { t: 'ok' } | { t: 'error' } | { t: 'ack' }> & Record<string, unknown>;

export interface RawClientOptions {
  /** Answer every deliver with `received` (default true). */
  autoReceive?: boolean;
  /** Frames no waiter takes and for which this returns false are dropped (default: keep all). */
  keep?: (f: Frame) => boolean;
  /** Sees every frame first. */
  onFrame?: (f: Frame) => void;
  /** Answer pings (default true); false plays a dead peer. */
  autoPong?: boolean;
}

interface Waiter {
  pred: (f: Frame) => boolean;
  resolve: (f: Frame) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export interface CloseInfo {
  code: number;
  reason: string;
}

/** A raw wire-protocol client. */
export class RawClient {
  readonly closed: Promise<CloseInfo>;
  closeInfo: CloseInfo | undefined;
  /** Frames that failed the RelayFrame schema (should stay empty). */
  readonly violations: string[] = [];
  userId = '';
  ready: Ready | undefined;
  /** The identity of the last handshake (what deleteAccount() signs with). */
  identity: Identity | undefined;
  /** The relay key of the last challenge (checked against its signature). */
  relayKey: Uint8Array | undefined;
  /** The normalised address this client dialled: what its logins sign. */
  readonly relayUrl: string;
  private inbox: Frame[] = [];
  private waiters: Waiter[] = [];
  private nextRid = 1;

  private constructor(
    readonly ws: WebSocket,
    private readonly opts: RawClientOptions,
  ) {
    this.relayUrl = normaliseRelayUrl(ws.url);
    ws.on('message', (data, isBinary) => this.onMessage(data.toString(), isBinary));
    ws.on('error', () => {}); // surfaced through `closed`
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        for (const w of this.waiters.splice(0)) {
          clearTimeout(w.timer);
          w.reject(new Error(`${this.userId || 'client'} closed (${code} ${reason.toString()})`));
        }
        resolve(this.closeInfo);
      });
    });
  }

  /** Opens a socket without any handshake. */
  static open(url: string, opts: RawClientOptions = {}): Promise<RawClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false, autoPong: opts.autoPong ?? true });
    const client = new RawClient(ws, opts);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
    });
  }

  /** Opens a socket and authenticates as `userId`; throws if the relay refuses. */
  static async connect(
    url: string,
    userId: string,
    identity: Identity = Identity.generate(),
    opts: RawClientOptions = {},
  ): Promise<RawClient> {
    const client = await RawClient.open(url, opts);
    const answer = await client.handshake(userId, identity);
    if (answer.t !== 'ready') throw new Error(`auth refused: ${JSON.stringify(answer)}`);
    return client;
  }

  /** hello -> challenge -> auth; resolves with `ready` or the relay's error frame. */
  async handshake(userId: string, identity: Identity): Promise<Frame> {
    this.userId = userId;
    this.identity = identity;
    this.send({ t: 'hello', v: WIRE_VERSION, userId });
    const challenge = await this.next((f) => f.t === 'challenge' || f.t === 'error');
    if (challenge.t !== 'challenge') return challenge;
    const relayKey = unb64(challenge.relayKey);
    const nonce = unb64(challenge.nonce);
    if (
      !new VerifyKey(relayKey).verify(
        challengeSignatureInput(relayKey, userId, nonce),
        unb64(challenge.signature),
      )
    )
      this.violations.push('the challenge is not signed by the relay key it carries');
    this.relayKey = relayKey;
    const signature = identity.signing.sign(loginSignatureInput(relayKey, this.relayUrl, userId, nonce));
    this.send({
      t: 'auth',
      identity: b64(encodePublicIdentity(identity.publicIdentity)),
      signature: b64(signature),
      relayUrl: this.relayUrl,
    });
    const answer = await this.next((f) => f.t === 'ready' || f.t === 'error');
    if (answer.t === 'ready') this.ready = answer;
    return answer;
  }

  /** Sends an object as JSON, a string as a text frame, a Buffer as a binary frame. */
  send(frame: unknown): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (Buffer.isBuffer(frame)) this.ws.send(frame, { binary: true });
    else this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Sends a request with a fresh rid; resolves with its ok/ack/error. */
  request(frame: Record<string, unknown>, timeoutMs?: number): Promise<Reply> {
    const rid = this.nextRid++;
    this.send({ ...frame, rid });
    return this.next(
      (f) => 'rid' in f && f.rid === rid && (f.t === 'ok' || f.t === 'error' || f.t === 'ack'),
      timeoutMs,
    ) as Promise<Reply>;
  }

  /** Deletes the account as the protocol asks: a deletion challenge, then the signed deletion. */
  async deleteAccount(): Promise<Reply> {
    const challenge = await this.request({ t: 'deleteAccountChallenge' });
    if (challenge.t !== 'ok') return challenge;
    const signature = this.identity!.signing.sign(
      deleteAccountSignatureInput(this.relayKey!, this.userId, unb64(String(challenge.nonce))),
    );
    return this.request({ t: 'deleteAccount', signature: b64(signature) });
  }

  /** Sends a request without waiting; returns its rid. */
  fire(frame: Record<string, unknown>): number {
    const rid = this.nextRid++;
    this.send({ ...frame, rid });
    return rid;
  }

  /** The first kept frame matching `pred` (already received or future). */
  next(pred: (f: Frame) => boolean = () => true, timeoutMs = 10_000): Promise<Frame> {
    const i = this.inbox.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]!);
    if (this.closeInfo) return Promise.reject(new Error(`${this.userId || 'client'} is closed`));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        pred,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          reject(new Error(`${this.userId || 'client'}: no matching frame within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  /** Collects `n` delivers (in arrival order). */
  async delivers(n: number, timeoutMs = 10_000): Promise<Deliver[]> {
    const out: Deliver[] = [];
    for (let i = 0; i < n; i++) out.push((await this.next((f) => f.t === 'deliver', timeoutMs)) as Deliver);
    return out;
  }

  /** Frames received and not yet taken by `next`. */
  pending(): readonly Frame[] {
    return this.inbox;
  }

  close(): Promise<CloseInfo> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
    return this.closed;
  }

  private onMessage(text: string, isBinary: boolean): void {
    if (isBinary) {
      this.violations.push('binary frame from the relay');
      return;
    }
    const parsed = parseFrame(RelayFrame, text);
    if (!parsed.ok) {
      this.violations.push(`${parsed.error}: ${text.slice(0, 200)}`);
      return;
    }
    // The raw JSON, not parsed.value: RelayFrame's `ok` is v.object, which strips the reply's data.
    const f = JSON.parse(text) as Frame;
    this.opts.onFrame?.(f);
    if (f.t === 'deliver' && this.opts.autoReceive !== false) this.send({ t: 'received', seq: f.seq });
    const i = this.waiters.findIndex((w) => w.pred(f));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      clearTimeout(w!.timer);
      w!.resolve(f);
    } else if (!this.opts.keep || this.opts.keep(f)) this.inbox.push(f);
  }
}

/** A unique, valid message id. */
export const msgId = (): string => randomUUID();

/** A base64 body carrying `text` (the relay never reads it). */
export const body = (text: string): string => Buffer.from(text).toString('base64');
export const unbody = (b: string | undefined): string => Buffer.from(b ?? '', 'base64').toString();

/**
 * A test's own verified copy of a group's membership log, to make signed entries for raw clients the way
 * a real client does (core/crypto/membership.ts) and to follow what the relay accepted.
 */
export class TestGroup {
  readonly entries: Uint8Array[] = [];
  log!: GroupLog;

  private constructor(readonly name: string) {}

  /** A group whose genesis `creator` signs (not yet sent). */
  static create(
    name: string,
    creator: { id: string; identity: Identity },
    policy: JoinPolicy = JoinPolicy.INVITE_ONLY,
  ): { group: TestGroup; genesis: Uint8Array } {
    const group = new TestGroup(name);
    return { group, genesis: authorFor(creator).genesis(name, policy) };
  }

  /** A copy of a group's log from its entries (verified as a client does). */
  static fromEntries(name: string, entries: readonly Uint8Array[]): TestGroup {
    const group = new TestGroup(name);
    for (const e of entries) group.apply(e);
    return group;
  }

  /** The next entry by `who` on the current head (not yet sent or applied). */
  next(who: { id: string; identity: Identity }, body: Parameters<EntryAuthor['next']>[1]): Uint8Array {
    return authorFor(who).next(this.log, body);
  }

  /** A JOIN by `who` (open, or with a link key). */
  join(who: { id: string; identity: Identity }, link?: SigningKeyPair): Uint8Array {
    return authorFor(who).join(this.log, link);
  }

  /** Takes an entry the relay accepted into our copy. */
  apply(bytes: Uint8Array): this {
    const entry = decodeEntry(bytes);
    this.log = this.entries.length === 0 ? startLog(entry).log : applyEntry(this.log, entry).log;
    this.entries.push(bytes);
    return this;
  }

  /** Sends an entry as groupAppend; applies it when the relay accepts. */
  async append(c: RawClient, bytes: Uint8Array): Promise<Reply> {
    const reply = await c.request({ t: 'groupAppend', group: this.name, entry: b64(bytes) });
    if (reply.t === 'ok') this.apply(bytes);
    return reply;
  }
}

const authorFor = (who: { id: string; identity: Identity }): EntryAuthor =>
  new EntryAuthor(who.id, who.identity, Date.now);
