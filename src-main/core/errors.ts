/**
 * Typed errors with stable codes. Callers branch on `code`, never on `message`.
 * Every failure in the core is one of these; nothing fails open (see docs/PROTOCOL.md "Errors").
 */

/** Stable error codes. Part of the public contract: never renumber or rename. */
export const ErrorCode = {
  // cryptography
  BAD_TAG: 'E2EE_BAD_TAG',
  BAD_SIGNATURE: 'E2EE_BAD_SIGNATURE',
  INVALID_KEY: 'E2EE_INVALID_KEY',
  REPLAY: 'E2EE_REPLAY',
  TOO_FAR_AHEAD: 'E2EE_TOO_FAR_AHEAD',
  RATE_LIMITED: 'E2EE_RATE_LIMITED',
  UNKNOWN_SESSION: 'E2EE_UNKNOWN_SESSION',
  UNKNOWN_KEY_ID: 'E2EE_UNKNOWN_KEY_ID',
  UNKNOWN_PREKEY: 'E2EE_UNKNOWN_PREKEY',
  IDENTITY_CHANGED: 'E2EE_IDENTITY_CHANGED',
  RELAY_KEY_CHANGED: 'E2EE_RELAY_KEY_CHANGED',
  IDENTITY_REJECTED: 'E2EE_IDENTITY_REJECTED',
  SAFETY_NUMBER_MISMATCH: 'E2EE_SAFETY_NUMBER_MISMATCH',
  // message structure
  MALFORMED: 'E2EE_MALFORMED',
  BAD_VERSION: 'E2EE_BAD_VERSION',
  WRONG_TYPE: 'E2EE_WRONG_TYPE',
  WRONG_RECIPIENT: 'E2EE_WRONG_RECIPIENT',
  NOT_A_MEMBER: 'E2EE_NOT_A_MEMBER',
  /** A group membership entry that is malformed or does not follow the log it is applied to. */
  BAD_ENTRY: 'E2EE_BAD_ENTRY',
  /** A group membership change its author may not make (not an admin, not invited, group closed...). */
  NOT_ALLOWED: 'E2EE_NOT_ALLOWED',
  /** Our group log and another member's (or the relay's) disagree, or entries are withheld. */
  GROUP_OUT_OF_SYNC: 'E2EE_GROUP_OUT_OF_SYNC',
  TOO_LARGE: 'E2EE_TOO_LARGE',
  // relay and connection
  RELAY: 'E2EE_RELAY',
  NOT_CONNECTED: 'E2EE_NOT_CONNECTED',
  /** The relay's TLS certificate is not trusted (self-signed, another CA, expired, another host name). */
  UNTRUSTED_CERTIFICATE: 'E2EE_UNTRUSTED_CERTIFICATE',
  // state
  BAD_STATE: 'E2EE_BAD_STATE',
  // API misuse
  USAGE: 'E2EE_USAGE',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Base class of every error the messenger raises on purpose. */
export class E2EEError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A cryptographic check failed: tag, signature, key, replay, ratchet window. */
export class CryptoError extends E2EEError {}

/** A frame or message does not follow the protocol (structure, version, type, routing). */
export class ProtocolError extends E2EEError {}

/** Serialised state could not be restored. */
export class StorageError extends E2EEError {}

/** The caller used the API wrongly (bad argument, wrong order). */
export class UsageError extends E2EEError {
  constructor(message: string) {
    super(ErrorCode.USAGE, message);
  }
}

/** The relay refused a request; `relayCode` is the relay's RelayErrorCode (docs/PROTOCOL.md). */
export class RelayError extends E2EEError {
  constructor(
    readonly relayCode: string,
    message: string,
  ) {
    super(ErrorCode.RELAY, message);
  }
}

/**
 * The relay at an address presented another key than the one pinned for it on first use (issue 8): the
 * client did not log in and sends nothing there until the user accepts the new key
 * (`E2EEClient.acceptRelayKey`) after comparing fingerprints with the relay's operator.
 */
export class RelayKeyChangedError extends CryptoError {
  constructor(
    /** The normalised address (login.ts normaliseRelayUrl). */
    readonly relayUrl: string,
    /** The key pinned for it, and its fingerprint (30 digits). */
    readonly pinnedKey: Uint8Array,
    readonly pinnedFingerprint: string,
    /** The key the relay presented (and proved it holds), and its fingerprint. */
    readonly presentedKey: Uint8Array,
    readonly presentedFingerprint: string,
  ) {
    super(
      ErrorCode.RELAY_KEY_CHANGED,
      `the relay at ${relayUrl} presented another key than before (fingerprint ${presentedFingerprint}, pinned ${pinnedFingerprint}); not logged in`,
    );
  }
}
