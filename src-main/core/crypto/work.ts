/**
 * Bounded decryption work (docs/PROTOCOL.md "Bounded work", issue 9).
 *
 * Until a received message is authenticated, what the receiver computes is chosen by whoever sent
 * it: a claimed counter decides how many chain keys are derived, a new ratchet key costs a DH, a
 * session start costs X3DH. Every such step is priced here, in units of one HMAC-SHA-256 of a chain
 * step, from the header alone, so it is accounted (and refused when it does not fit) before any of it
 * is done. The prices are rough ratios measured with Node's OpenSSL (an HMAC ~2 µs, a DH ~75 µs);
 * they decide what is counted, not what is correct, so they need not be exact.
 */
import { CryptoError, ErrorCode } from '../errors.js';
import { MAX_ARCHIVED_SESSIONS, MAX_FORWARD_JUMP, MAX_PLAINTEXT_BYTES } from './constants.js';

/** What each step of a decryption costs, in HMAC-SHA-256 chain steps. */
export const WorkCost = {
  /** One HMAC-SHA-256 of the hash ratchet (CK → CK', or CK → MK): the unit. */
  CHAIN_STEP: 1,
  /** One P-256 ECDH. */
  DH: 40,
  /** A root KDF step (HKDF-SHA-256, 64 bytes). */
  ROOT_KDF: 4,
  /** One ECDSA P-256 verification (a PREKEY message's identity certificate, a group message). */
  VERIFY: 30,
  /** X3DH as the responder: up to four DHs and the HKDF. */
  X3DH: 170,
} as const;

/**
 * Checking a message's AEAD tag: its message key and nonce (two HMACs), the AES-GCM key schedule and
 * GHASH over header and ciphertext (about one unit per 256 bytes in @noble/ciphers). A group message
 * has neither the two HMACs nor associated data (headerBytes 0); its price keeps the HMACs, to spare.
 */
export function tagCheckCost(headerBytes: number, ciphertextBytes: number): number {
  return 12 + Math.ceil((headerBytes + ciphertextBytes) / 256);
}

/**
 * The most work one frame may cause before it is authenticated: the costliest single attempt (a
 * session start whose counter is MAX_FORWARD_JUMP, on the largest message) plus a DH step on each
 * other session of the peer, each with an empty chain. About 5 ms on the machine the prices come from.
 */
export const MAX_FRAME_WORK =
  WorkCost.VERIFY +
  WorkCost.X3DH +
  WorkCost.ROOT_KDF +
  MAX_FORWARD_JUMP * WorkCost.CHAIN_STEP +
  tagCheckCost(1024, MAX_PLAINTEXT_BYTES + 16) +
  MAX_ARCHIVED_SESSIONS * (WorkCost.DH + WorkCost.ROOT_KDF + 1 + tagCheckCost(512, 16));

/**
 * The work allowance of one received frame. Work before authentication is taken (and refused when
 * it does not fit, before it is done); setting aside skipped keys after authentication, for a message
 * now known to be the sender's own, is charged without refusal.
 */
export class WorkMeter {
  private used = 0;
  private setAside = 0;

  /**
   * `limit` is MAX_FRAME_WORK, or less when the sender's budget has less left (`limitedBySender`:
   * then a refusal is E2EE_RATE_LIMITED, reported to the user as such).
   */
  constructor(
    readonly limit: number = MAX_FRAME_WORK,
    readonly limitedBySender = false,
  ) {
    if (!(limit >= 0)) throw new RangeError('limit must be >= 0');
  }

  /** Units accounted so far (taken and charged). */
  get spent(): number {
    return this.used + this.setAside;
  }

  /** Units charged after authentication: deriving the skipped keys an authentic message set aside. */
  get charged(): number {
    return this.setAside;
  }

  /** True when `units` more can be taken. */
  fits(units: number): boolean {
    return this.used + units <= this.limit;
  }

  /** Accounts unauthenticated work about to be done; E2EE_RATE_LIMITED (nothing done) if it does not fit. */
  take(units: number): void {
    if (!this.fits(units)) {
      throw new CryptoError(
        ErrorCode.RATE_LIMITED,
        this.limitedBySender
          ? "the sender's decryption work budget is spent for now"
          : 'this message would cost more work than one message may',
      );
    }
    this.used += units;
  }

  /** Accounts the skipped keys an authenticated message sets aside; never refused. */
  charge(units: number): void {
    this.setAside += units;
  }
}
