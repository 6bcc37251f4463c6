/**
 * One client connection: the handshake state machine (hello -> challenge -> auth -> ready), input
 * validation, the per-connection rate limit, and bounds on misbehaviour. Nothing a connection sends can
 * throw out of here or touch another connection's state except through the router.
 */
import type { Socket } from 'node:net';
import { WebSocket, type RawData } from 'ws';
import { equalBytes } from '../core/encoding.js';
import { decodePublicIdentity, type PublicIdentity } from '../core/crypto/identity.js';
import { VerifyKey } from '../core/crypto/primitives.js';
import { randomBytes } from '../core/crypto/primitives.js';
import { RELAY_NONCE_BYTES, challengeSignatureInput, loginSignatureInput } from '../core/protocol/login.js';
import {
  ClientFrame,
  RelayErrorCode,
  WIRE_VERSION,
  b64,
  parseFrameByType,
  unb64,
  type RelayFrame,
} from '../core/protocol/wire.js';
import { RelayError, STORAGE_UNAVAILABLE_MESSAGE, afterDurable, type RelayContext } from './context.js';
import { Throttle } from './limits.js';
import { handleRequest, type Client } from './handlers.js';
import { closeIfSlow } from './router.js';

/** Schema or JSON failures tolerated per connection before it is closed. */
const MAX_BAD_FRAMES = 50;
/** Frames other than the expected handshake frame tolerated before authentication. */
const MAX_UNAUTHENTICATED_FRAMES = 3;
/** Requests that write (refused with STORAGE_UNAVAILABLE while the relay cannot write its storage). */
const WRITES: ReadonlySet<ClientFrame['t']> = new Set([
  'send',
  'groupSend',
  'publishPreKeys',
  'getBundle', // hands out a one-time prekey: deletes it
  'groupAppend',
  'deleteAccount',
]);
/** The close reason of a login refused while storage is unavailable (with 1013: try again later). */
const STORAGE_CLOSE_REASON = 'storage unavailable';
/** Error messages echo parts of the offending frame; keep them short. */
const MAX_MESSAGE_CHARS = 200;

type State = 'hello' | 'challenged' | 'registering' | 'ready' | 'closing';
type HelloFrame = Extract<ClientFrame, { t: 'hello' }>;
type AuthFrame = Extract<ClientFrame, { t: 'auth' }>;

/** A WebSocket connection to the relay. */
export class Connection implements Client {
  userId = '';
  mode: 'draining' | 'live' = 'draining';
  private state: State = 'hello';
  private ended = false;
  private alive = true;
  private claimedUserId = '';
  private nonce: Uint8Array | undefined;
  /** The nonce of the last deletion challenge, until the next deleteAccount uses it up. */
  private deletionNonce: Uint8Array | undefined;
  private badFrames = 0;
  private unauthenticatedFrames = 0;
  private tokens: number;
  private refilledAt: number;
  private resumeTimer: NodeJS.Timeout | undefined;
  /** Frames read while the rate limit had no token for them, in arrival order. */
  private backlog: [RawData, boolean][] = [];
  private handshakeTimer: NodeJS.Timeout | undefined;
  private corked = false;
  /** The frame being handled, and when it was read (performance.now()): for the latency metric. */
  private requestType = '';
  private requestStarted = 0;
  /**
   * Set once a write of this connection was refused for storage: every later write on it is refused
   * too, and the relay closes it (1013) once storage is back, so the client sends its kept messages
   * again, in order, on a new connection (nothing after a refused message overtakes it).
   */
  storageRefused = false;

  /** `socket` is the upgraded request's socket, which ws writes to. */
  constructor(
    private readonly ws: WebSocket,
    private readonly socket: Socket,
    private readonly ctx: RelayContext,
    readonly label: string,
    onGone: (c: Connection) => void,
  ) {
    this.tokens = ctx.options.rateLimit.burst;
    this.refilledAt = ctx.options.now();
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('pong', () => {
      this.alive = true;
    });
    // ws reports protocol violations (oversize -> 1009, bad UTF-8 -> 1007) here and closes itself.
    ws.on('error', (err) =>
      ctx.log.warn('socket_error', `${label} socket error: ${err.message}`, {
        conn: label,
        error: err.message,
      }),
    );
    ws.on('close', (code) => {
      this.onClose(code);
      onGone(this);
    });
    this.handshakeTimer = setTimeout(() => {
      ctx.log.info('handshake_timeout', `${label} handshake timeout`, { conn: label });
      this.close(1008, 'handshake timeout');
    }, ctx.options.handshakeTimeoutMs);
  }

  get closed(): boolean {
    return this.ended || this.state === 'closing';
  }

  /**
   * Sends one frame; `done` runs once it reached the OS or the socket is gone. Frames sent in the same
   * event loop turn leave in one write (the socket is corked until setImmediate): a burst of acks,
   * a drain page or many broadcasts cost one syscall instead of one per frame.
   */
  send(frame: string, done?: (err?: Error) => void): void {
    if (this.ws.readyState !== WebSocket.OPEN) {
      if (done) queueMicrotask(() => done(new Error('socket closed')));
      return;
    }
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(() => this.flush());
    }
    this.ws.send(frame, done);
  }

  /** Writes out what is corked. */
  flush(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }

  bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  /** Closes the connection (what it did not acknowledge stays queued). Safe to call twice. */
  close(code: number, reason: string): void {
    if (this.ended) return;
    this.ctx.metrics?.closed(reason);
    this.ended = true;
    this.state = 'closing';
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.resumeTimer);
    if (this.userId) this.ctx.router.detach(this);
    this.ws.close(code, reason);
  }

  /** Drops the socket at once (heartbeat failure, shutdown). */
  terminate(): void {
    this.ended = true;
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.resumeTimer);
    this.ws.terminate();
  }

  retire(): void {
    this.state = 'closing';
  }

  newDeletionNonce(): Uint8Array {
    this.deletionNonce = randomBytes(RELAY_NONCE_BYTES);
    return this.deletionNonce;
  }

  takeDeletionNonce(): Uint8Array | undefined {
    const nonce = this.deletionNonce;
    this.deletionNonce = undefined;
    return nonce;
  }

  respond(
    rid: number | undefined,
    reply: () => RelayFrame | undefined,
    after?: (err?: unknown) => void,
  ): void {
    const { requestType, requestStarted } = this;
    afterDurable(this.ctx, (err) => {
      this.ctx.metrics?.request(requestType, requestStarted);
      if (err) {
        if (this.ctx.storage.failed(err))
          this.error(RelayErrorCode.STORAGE_UNAVAILABLE, STORAGE_UNAVAILABLE_MESSAGE, rid);
        else this.error(RelayErrorCode.INTERNAL, 'The relay could not store this request; try again.', rid);
      } else {
        const frame = reply();
        if (frame) this.sendFrame(frame);
      }
      after?.(err);
    });
  }

  /** One heartbeat step (ws README): drop a peer that did not answer the previous ping. */
  heartbeat(): void {
    if (!this.alive) {
      this.ctx.log.info('heartbeat_missed', `${this.label} missed a heartbeat`, { conn: this.label });
      this.ctx.metrics?.closed('missed heartbeat');
      this.terminate();
      return;
    }
    this.alive = false;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.ping();
  }

  private sendFrame(frame: RelayFrame): void {
    if (frame.t === 'error') this.ctx.metrics?.refused(frame.code);
    if (frame.t === 'error' && frame.code === RelayErrorCode.STORAGE_UNAVAILABLE) this.storageRefused = true;
    this.send(JSON.stringify(frame));
    // Replies obey the slow-consumer bound deliveries do: a client that asks and asks (log pages,
    // bundles) without reading the answers would otherwise make us buffer without end.
    closeIfSlow(this, this.ctx.options.maxBufferedBytes, this.ctx.log);
  }

  private error(code: RelayErrorCode, message: string, rid?: number): void {
    const text = message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS)}…` : message;
    this.sendFrame({ t: 'error', rid, code, message: text });
  }

  private onClose(code: number): void {
    this.ended = true;
    this.state = 'closing';
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.resumeTimer);
    if (this.userId) this.ctx.router.detach(this);
    this.ctx.log.info('close', `close ${this.label} code=${code}`, {
      conn: this.label,
      code,
      online: this.ctx.router.onlineCount,
    });
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.closed) return;
    if (this.backlog.length > 0 || !this.takeToken()) {
      this.backlog.push([data, isBinary]);
      this.waitForTokens();
      return;
    }
    this.process(data, isBinary);
  }

  /** Handles one frame; false when it was held back (Throttle) to be handled again later. */
  private process(data: RawData, isBinary: boolean): boolean {
    try {
      return this.handleMessage(data, isBinary);
    } catch (err) {
      // Last line of defence: nothing a client sends may take the relay down.
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      this.ctx.log.error('internal_error', `${this.label} internal error: ${error}`, {
        conn: this.label,
        error,
      });
      return true;
    }
  }

  private handleMessage(data: RawData, isBinary: boolean): boolean {
    if (this.closed) return true;
    if (isBinary) {
      this.badFrame('Binary frames are not accepted: send JSON text frames.');
      return true;
    }
    const text = rawText(data);
    const parsed = parseFrameByType(ClientFrame, text);
    if (!parsed.ok) {
      this.badFrame(`Bad frame: ${parsed.error}.`, ridOf(text));
      return true;
    }
    const frame = parsed.value;
    const rid = 'rid' in frame ? frame.rid : undefined;
    this.requestType = frame.t;
    this.requestStarted = performance.now();
    try {
      this.dispatch(frame);
    } catch (err) {
      if (err instanceof Throttle) {
        // Over a per-user budget (group fan-out, bundle requests): the frame waits, first in line, and
        // the socket is not read meanwhile, so the sender slows down and nothing is lost or reordered.
        this.holdBack(data, isBinary, err.delayMs);
        return false;
      }
      if (err instanceof RelayError) {
        // After the commit, so replies keep the order of the requests.
        this.respond(rid, () => ({ t: 'error', rid, code: err.code, message: err.message }));
        return true;
      }
      if (this.ctx.storage.failed(err)) {
        // A write on this thread failed (a seq reservation): the state is entered, the sender told.
        this.respond(rid, () => ({
          t: 'error',
          rid,
          code: RelayErrorCode.STORAGE_UNAVAILABLE,
          message: STORAGE_UNAVAILABLE_MESSAGE,
        }));
        return true;
      }
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      this.ctx.log.error('internal_error', `${this.label} internal error on ${frame.t}: ${error}`, {
        conn: this.label,
        error,
      });
      this.error(RelayErrorCode.INTERNAL, 'The relay failed to process this frame.', rid);
    }
    return true;
  }

  private dispatch(frame: ClientFrame): void {
    switch (this.state) {
      case 'hello':
        if (frame.t === 'hello') this.onHello(frame);
        else this.unauthenticated(frame);
        return;
      case 'challenged':
        if (frame.t === 'auth') this.onAuth(frame);
        else this.unauthenticated(frame);
        return;
      case 'registering':
        this.unauthenticated(frame);
        return;
      case 'ready':
        if (frame.t === 'hello' || frame.t === 'auth')
          this.badFrame('This connection is already authenticated.');
        else if (WRITES.has(frame.t) && (this.storageRefused || !this.ctx.storage.available))
          throw new RelayError(RelayErrorCode.STORAGE_UNAVAILABLE, STORAGE_UNAVAILABLE_MESSAGE);
        else if (frame.t === 'receipt' && !this.ctx.storage.available)
          return; // not stored, and receipts get no answer: dropped (the message itself is delivered)
        else if (frame.t === 'received' && !this.ctx.storage.available)
          return; // the item stays queued and comes again on the next connection (duplicates are dropped)
        else handleRequest(this.ctx, this, frame);
        return;
      case 'closing':
        return;
    }
  }

  private onHello(f: HelloFrame): void {
    if (f.v !== WIRE_VERSION) {
      this.error(
        RelayErrorCode.UNSUPPORTED_VERSION,
        `This relay speaks wire protocol version ${WIRE_VERSION}, not ${f.v}.`,
      );
      this.close(1008, 'unsupported version');
      return;
    }
    this.claimedUserId = f.userId;
    this.nonce = randomBytes(RELAY_NONCE_BYTES); // fresh per connection: no login is replayed here
    this.state = 'challenged';
    // Signed with the relay's key: only the holder of the key that clients pinned can issue challenges.
    const key = this.ctx.relayKey;
    this.sendFrame({
      t: 'challenge',
      nonce: b64(this.nonce),
      relayKey: b64(key.publicKey),
      signature: b64(key.signing.sign(challengeSignatureInput(key.publicKey, f.userId, this.nonce))),
    });
  }

  private onAuth(f: AuthFrame): void {
    const userId = this.claimedUserId;
    const identityBytes = unb64(f.identity);
    let identity: PublicIdentity;
    try {
      identity = decodePublicIdentity(identityBytes); // both keys valid, DH key certified
    } catch {
      this.authFailed('The identity is not a valid public identity.');
      return;
    }
    const addresses = this.ctx.options.publicUrls;
    if (addresses && !addresses.includes(f.relayUrl)) {
      this.authFailed(
        `This relay answers at ${addresses.join(', ')}, not at ${f.relayUrl}: the login was signed for another address.`,
      );
      return;
    }
    // Our key is in the signed bytes: a login signed for any other relay (or address) fails here.
    const input = loginSignatureInput(this.ctx.relayKey.publicKey, f.relayUrl, userId, this.nonce!);
    // Not the shared verify-key cache: a login check is one-off, and cached OpenSSL keys cost memory.
    if (!new VerifyKey(identity.signingKey).verify(input, unb64(f.signature))) {
      this.authFailed("The signature does not verify for this identity over this relay's key and challenge.");
      return;
    }
    const known = this.ctx.store.identityOf(userId);
    if (known && !equalBytes(known, identityBytes)) {
      this.authFailed(`The user id "${userId}" is registered with another identity.`);
      return;
    }
    if (!this.ctx.storage.available) {
      this.storageUnavailable(known ? 'login' : 'registration');
      return;
    }
    if (known) {
      this.authenticated(userId, false);
      return;
    }
    // New accounts per address: someone scripting throwaway accounts is told to wait (1013: try later).
    const address = this.socket.remoteAddress;
    if (!this.ctx.limits.exempt(address) && !this.ctx.limits.registrations.take(address ?? '?')) {
      this.ctx.log.warn('rate_limited', `${this.label} registration refused: too many from ${address}`, {
        conn: this.label,
        ip: address,
      });
      this.error(
        RelayErrorCode.RATE_LIMITED,
        'Too many new accounts from your address; try again in a minute.',
      );
      this.close(1013, 'try again later');
      return;
    }
    // Registered durably (committed and synced) before the user or anyone else is told.
    this.state = 'registering';
    this.ctx.store.insertUser(userId, identityBytes, this.ctx.options.now());
    this.ctx.store.afterCommit((err) => {
      if (this.closed) return;
      if (err) {
        if (this.ctx.storage.failed(err)) {
          this.storageUnavailable('registration');
          return;
        }
        this.error(RelayErrorCode.INTERNAL, 'The relay could not register this user; try again later.');
        this.close(1011, 'internal error');
        return;
      }
      this.ctx.users.add(userId);
      this.ctx.groups.refreshUser(userId);
      this.ctx.log.info('registered', `registered ${this.label}`, {
        conn: this.label,
        users: this.ctx.users.size,
      });
      this.authenticated(userId, true);
    });
  }

  /** The user is known (or now registered): this connection becomes theirs and starts receiving. */
  private authenticated(userId: string, registered: boolean): void {
    clearTimeout(this.handshakeTimer);
    this.nonce = undefined;
    this.userId = userId;
    this.state = 'ready';
    this.ctx.router.attach(this);
    this.ctx.log.info('authenticated', `authenticated ${this.label}`, {
      conn: this.label,
      online: this.ctx.router.onlineCount,
    });
    this.sendFrame({
      t: 'ready',
      userId,
      registered,
      oneTimePreKeyCount: this.ctx.store.preKeyCount(userId),
      groups: this.ctx.groups.headsOf(userId),
    });
    if (registered) {
      const event: RelayFrame = { t: 'event', event: { type: 'userCreated', userId } };
      this.ctx.router.broadcast(JSON.stringify(event), this);
    }
    this.ctx.router.startDrain(this);
  }

  /** A login or registration while storage is unavailable: refused, to be tried again later (1013). */
  private storageUnavailable(what: 'login' | 'registration'): void {
    this.ctx.log.warn('storage_unavailable', `${this.label} ${what} refused: storage unavailable`, {
      conn: this.label,
    });
    this.error(
      RelayErrorCode.STORAGE_UNAVAILABLE,
      `The relay is out of storage (${this.ctx.storage.words ?? 'it cannot write its data'}); try again later.`,
    );
    this.close(1013, STORAGE_CLOSE_REASON);
  }

  private authFailed(message: string): void {
    this.ctx.log.warn('auth_failed', `${this.label} authentication failed`, { conn: this.label });
    this.error(RelayErrorCode.AUTH_FAILED, message);
    this.close(1008, 'authentication failed');
  }

  private unauthenticated(frame: ClientFrame): void {
    const expected = this.state === 'hello' ? 'hello' : 'auth with the signed challenge';
    this.error(
      RelayErrorCode.NOT_AUTHENTICATED,
      `Authenticate first: the relay expects ${expected}, not ${frame.t}.`,
      'rid' in frame ? frame.rid : undefined,
    );
    if (++this.unauthenticatedFrames >= MAX_UNAUTHENTICATED_FRAMES) this.close(1008, 'not authenticated');
  }

  private badFrame(message: string, rid?: number): void {
    this.error(RelayErrorCode.BAD_FRAME, message, rid);
    if (++this.badFrames > MAX_BAD_FRAMES) this.close(1008, 'too many bad frames');
  }

  /**
   * Token bucket, enforced by backpressure: a frame without a token waits in `backlog` and the socket
   * stops being read until the bucket has refilled, so TCP slows the client down. Nothing is dropped:
   * dropping one frame and accepting the next would reorder a sender's messages (a retried send arrives
   * after later ones), and order per sender is part of the delivery guarantee (issue 13). The backlog
   * holds at most what ws had already read from the socket when it was paused.
   */
  private takeToken(): boolean {
    const { framesPerSecond, burst } = this.ctx.options.rateLimit;
    if (framesPerSecond === Infinity) return true;
    const now = this.ctx.options.now();
    this.tokens = Math.min(
      burst,
      this.tokens + (Math.max(0, now - this.refilledAt) / 1000) * framesPerSecond,
    );
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private waitForTokens(): void {
    if (this.resumeTimer) return;
    const ms = Math.ceil(((1 - this.tokens) / this.ctx.options.rateLimit.framesPerSecond) * 1000);
    this.pauseFor(ms);
  }

  /**
   * Puts a throttled frame back first in line (its frame token refunded) and tries it again after `ms`,
   * or after a second at most (the budget is checked again then, whatever the clock did meanwhile).
   */
  private holdBack(data: RawData, isBinary: boolean, ms: number): void {
    this.backlog.unshift([data, isBinary]);
    this.tokens = Math.min(this.ctx.options.rateLimit.burst, this.tokens + 1);
    clearTimeout(this.resumeTimer);
    this.resumeTimer = undefined;
    this.pauseFor(Math.min(ms, 1000));
  }

  private pauseFor(ms: number): void {
    this.ws.pause();
    this.resumeTimer = setTimeout(() => this.drainBacklog(), Math.max(1, ms));
  }

  private drainBacklog(): void {
    this.resumeTimer = undefined;
    while (this.backlog.length > 0 && !this.closed && this.takeToken()) {
      const [data, isBinary] = this.backlog.shift()!;
      if (!this.process(data, isBinary)) return; // held back again: a timer is set
    }
    if (this.closed) this.backlog = [];
    else if (this.backlog.length > 0) this.waitForTokens();
    else this.ws.resume();
  }
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

/** The rid of a frame that failed validation, so the client can fail that request. */
function ridOf(text: string): number | undefined {
  let rid: unknown;
  try {
    const json: unknown = JSON.parse(text);
    if (typeof json === 'object' && json !== null && 'rid' in json) rid = json.rid;
  } catch {
    return undefined;
  }
  return Number.isSafeInteger(rid) && (rid as number) >= 1 ? (rid as number) : undefined;
}
