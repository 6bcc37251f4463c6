/**
 * The client's connection to the relay: one WebSocket at a time, the hello that opens the handshake,
 * requests matched to their answers by rid (with a timeout), and reconnects with jittered exponential
 * backoff. It holds no protocol state: the owner signs the challenge, handles 'ready' under its own
 * lock and then marks the connection authenticated; every other frame is handed to the owner.
 */
import WebSocket from 'ws';
import { randomBytes } from '../crypto/primitives.js';
import { E2EEError, ErrorCode, RelayError } from '../errors.js';
import {
  type ClientFrame,
  MAX_FRAME_BYTES,
  RelayFrame,
  WIRE_VERSION,
  parseFrameByType,
} from '../protocol/wire.js';

/** TLS settings for a wss:// relay. */
export interface RelayTlsOptions {
  /**
   * The certificates to trust, PEM: the relay's own self-signed certificate, or the CA that signed it.
   * They replace the system's certificate authorities for this client (Node's `tls.connect` `ca`), so
   * a relay with a certificate from a public CA is then refused. Default: the system's CAs, plus the
   * file in NODE_EXTRA_CA_CERTS.
   */
  ca?: string | Buffer | readonly (string | Buffer)[] | undefined;
}

/** Throws TypeError unless `tls` is undefined or a valid RelayTlsOptions. */
export function checkTlsOptions(tls: unknown): void {
  if (tls === undefined) return;
  if (typeof tls !== 'object' || tls === null) throw new TypeError('tls must be an object');
  for (const key of Object.keys(tls)) if (key !== 'ca') throw new TypeError(`unknown option "tls.${key}"`);
  const ca = (tls as RelayTlsOptions).ca;
  const pem = (c: unknown): boolean => typeof c === 'string' || Buffer.isBuffer(c);
  if (ca !== undefined && !pem(ca) && !(Array.isArray(ca) && ca.length > 0 && ca.every(pem)))
    throw new TypeError('tls.ca must be PEM text, a Buffer, or a non-empty array of them');
}

/** The client options the connection uses; read when needed, as the client always did. */
export interface RelayConnectionOptions {
  url: string;
  reconnect?: boolean | undefined;
  reconnectDelayMs?: { min: number; max: number } | undefined;
  requestTimeoutMs?: number | undefined;
  tls?: RelayTlsOptions | undefined;
}

/** A relay frame that is not the answer to a request (`ok`, or `error` with a waiting rid). */
export type RelayPush = Exclude<RelayFrame, { t: 'ok' } | { t: 'error' }>;

/** What the connection reports to its owner, synchronously, as frames and socket events arrive. */
export interface RelayConnectionHandlers {
  /** A valid frame for the owner (everything but request answers). */
  frame(f: RelayPush): void;
  /** The relay refused a frame sent with `transmit()` (its rid has no waiting request). */
  refused(rid: number, code: string, message: string): void;
  /** A frame from the relay failed validation; it is ignored. */
  malformed(problem: string): void;
  /** An authenticated connection closed. */
  disconnect(code: number, reason: string): void;
  /** A socket error, a relay error without rid, or a final refusal of the handshake. */
  error(e: Error): void;
  /** A connection attempt or an authenticated connection ended; the next attempt starts after `delayMs`. */
  retry(attempt: number, delayMs: number): void;
}

interface Pending {
  resolve: (frame: Record<string, unknown>) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** Relay refusals of the handshake after which reconnecting cannot help. */
const FATAL_HANDSHAKE_ERRORS = new Set(['AUTH_FAILED', 'UNSUPPORTED_VERSION']);

/**
 * Node's codes for a certificate that fails verification (tls docs, "X509 certificate error codes",
 * and the host name check). Trying again would only repeat the same refusal, as fast as the backoff
 * allows, so it is final like a refused login.
 */
const UNTRUSTED_CERTIFICATE_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** One relay connection (reopened after unexpected closes) owned by an E2EEClient. */
export class RelayConnection {
  private ws: WebSocket | undefined;
  private closedByUser = false;
  private authenticated = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempts = 0;
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private nextRid = 1;
  private readonly pending = new Map<number, Pending>();
  private lastRelayError: string | undefined;
  /**
   * The client itself ended the handshake, finally, for this reason: refuse() (the relay's key), or a
   * TLS certificate it does not trust.
   */
  private refusal: Error | undefined;

  constructor(
    private readonly userId: string,
    private readonly opts: RelayConnectionOptions,
    private readonly on: RelayConnectionHandlers,
  ) {}

  /** True between markAuthenticated() and the next close. */
  get isAuthenticated(): boolean {
    return this.authenticated;
  }

  /** Allows reconnecting again after close(). */
  resume(): void {
    this.closedByUser = false;
  }

  /** Resolves at the next notifyReady(); opens a socket unless one is open or opening. */
  waitForReady(): Promise<void> {
    const done = new Promise<void>((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
    if (!this.ws) this.open();
    return done;
  }

  /** The relay accepted us: requests may be sent and the reconnect backoff starts over. */
  markAuthenticated(): void {
    this.authenticated = true;
    this.attempts = 0;
  }

  /** Rejects everyone in waitForReady() with `err`: the owner could not handle 'ready' (the socket stays). */
  failReady(err: Error): void {
    for (const w of this.readyWaiters.splice(0)) w.reject(err);
  }

  /** Resolves everyone in waitForReady() (the owner has handled 'ready'). */
  notifyReady(): void {
    for (const w of this.readyWaiters.splice(0)) w.resolve();
  }

  /**
   * The client will not log in on this connection (the relay's key changed, or it could not prove it
   * holds it): closes the socket, does not reconnect, rejects waitForReady() with `err` and reports it
   * as an error. A later waitForReady() (after resume()) tries again.
   */
  refuse(err: Error): void {
    const ws = this.ws;
    if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) {
      this.refusal = err;
      ws.close(1008, 'relay not trusted'); // onClose finishes the refusal
      return;
    }
    // The socket is gone already: stop the reconnect it scheduled and finish here.
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    for (const w of this.readyWaiters.splice(0)) w.reject(err);
    if (!this.closedByUser) this.on.error(err);
  }

  /** Closes the socket and stops reconnecting; resolves once the socket is closed. */
  async close(): Promise<void> {
    this.closedByUser = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const ws = this.ws;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        ws.once('close', () => resolve());
        ws.close(1000, 'bye');
      });
    }
  }

  /** Sends a frame if the socket is open; otherwise drops it. */
  send(frame: ClientFrame): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify(frame));
  }

  /** Sends a frame whose answer arrives as a push (`ack` or `error`), giving it a fresh rid; not before authentication. */
  transmit(frame: Extract<ClientFrame, { rid: number }>): void {
    if (!this.authenticated) return;
    frame.rid = this.nextRid++;
    this.send(frame);
  }

  /** Sends a request and resolves with the relay's `ok` frame (rejects with its `error`, or on timeout or close). */
  request(frame: Extract<ClientFrame, { rid: number }>): Promise<Record<string, unknown>> {
    if (!this.authenticated) {
      return Promise.reject(new E2EEError(ErrorCode.NOT_CONNECTED, 'not connected to the relay'));
    }
    const rid = this.nextRid++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(rid);
        reject(new E2EEError(ErrorCode.NOT_CONNECTED, 'the relay did not answer in time'));
      }, this.opts.requestTimeoutMs ?? 15_000);
      this.pending.set(rid, { resolve, reject, timer });
      this.send({ ...frame, rid } as ClientFrame);
    });
  }

  private open(): void {
    const ca = this.opts.tls?.ca;
    const ws = new WebSocket(this.opts.url, {
      perMessageDeflate: false,
      maxPayload: MAX_FRAME_BYTES,
      ...(ca === undefined ? {} : { ca: ca as string | Buffer | (string | Buffer)[] }),
    });
    this.ws = ws;
    ws.on('open', () => ws.send(JSON.stringify({ t: 'hello', v: WIRE_VERSION, userId: this.userId })));
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      this.onMessage(data.toString());
    });
    ws.on('error', (e) => {
      const code = (e as { code?: unknown }).code;
      if (typeof code !== 'string' || !UNTRUSTED_CERTIFICATE_CODES.has(code)) {
        this.on.error(e);
        return;
      }
      // Reported once by onClose, which follows, as the reason connect() fails.
      const untrusted = new E2EEError(
        ErrorCode.UNTRUSTED_CERTIFICATE,
        `The relay's TLS certificate is not trusted (${code}: ${e.message}): check the relay's address, or trust its certificate or CA (option tls.ca).`,
      );
      untrusted.cause = e;
      this.refusal = untrusted;
    });
    ws.on('close', (code, reason) => this.onClose(ws, code, reason.toString()));
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (this.ws !== ws) return;
    this.ws = undefined;
    const wasAuthenticated = this.authenticated;
    this.authenticated = false;
    for (const [rid, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new E2EEError(ErrorCode.NOT_CONNECTED, 'connection to the relay closed'));
      this.pending.delete(rid);
    }
    if (wasAuthenticated) this.on.disconnect(code, reason);
    // Only a refused identity, version or certificate is final; a timeout, rate limit or restart is retried.
    const refusal = this.lastRelayError;
    this.lastRelayError = undefined;
    const ownRefusal = this.refusal;
    this.refusal = undefined;
    const fatal =
      ownRefusal !== undefined ||
      (!wasAuthenticated && refusal !== undefined && FATAL_HANDSHAKE_ERRORS.has(refusal));
    // Another connection of this user replaced us: reconnecting would push it off in turn.
    const replaced = code === 1000 && reason === 'replaced';
    if (replaced) this.closedByUser = true;
    if (fatal || this.closedByUser) {
      const waiters = this.readyWaiters.splice(0);
      const err =
        ownRefusal ?? new RelayError(refusal ?? 'AUTH_FAILED', reason || 'the relay refused the connection');
      for (const w of waiters)
        w.reject(this.closedByUser ? new E2EEError(ErrorCode.NOT_CONNECTED, 'closed') : err);
      if (fatal && !this.closedByUser) this.on.error(err);
      return;
    }
    if (this.opts.reconnect === false) {
      for (const w of this.readyWaiters.splice(0)) {
        w.reject(new E2EEError(ErrorCode.NOT_CONNECTED, 'could not connect to the relay'));
      }
      return;
    }
    const { min, max } = this.opts.reconnectDelayMs ?? { min: 250, max: 15_000 };
    const base = Math.min(max, min * 2 ** Math.min(this.attempts++, 16));
    const jitter = new DataView(randomBytes(4).buffer).getUint32(0) / 2 ** 32;
    const delayMs = base * (0.5 + jitter / 2);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.closedByUser) this.open();
    }, delayMs);
    this.on.retry(this.attempts, delayMs);
  }

  private onMessage(data: string): void {
    const parsed = parseFrameByType(RelayFrame, data);
    if (!parsed.ok) {
      this.on.malformed(parsed.error);
      return;
    }
    const f = parsed.value;
    switch (f.t) {
      case 'ok': {
        const p = this.pending.get(f.rid);
        if (!p) return;
        this.pending.delete(f.rid);
        clearTimeout(p.timer);
        p.resolve(f as Record<string, unknown>);
        return;
      }
      case 'error': {
        if (!this.authenticated) this.lastRelayError = f.code;
        if (f.rid === undefined) {
          this.on.error(new RelayError(f.code, f.message));
          return;
        }
        const p = this.pending.get(f.rid);
        if (p) {
          this.pending.delete(f.rid);
          clearTimeout(p.timer);
          p.reject(new RelayError(f.code, f.message));
          return;
        }
        this.on.refused(f.rid, f.code, f.message);
        return;
      }
      default:
        this.on.frame(f);
    }
  }
}
