/**
 * The one error type that crosses from the main-process services to the renderer: a stable `code` to
 * branch on and a `message` that is a plain sentence a person can read. Core and relay errors are
 * translated here, with our own wording: a relay's error text is never shown, since the relay is
 * untrusted and could put anything in it.
 */
import { E2EEError, ErrorCode, RelayError, RelayKeyChangedError } from '../core/errors.js';

/** Stable codes of ServiceError. Part of the renderer contract: never rename. */
export const ServiceCode = {
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  UNKNOWN_METHOD: 'UNKNOWN_METHOD',
  UNTRUSTED_SENDER: 'UNTRUSTED_SENDER',
  INTERNAL: 'INTERNAL',
  CLOSED: 'CLOSED',
  NO_PROFILE: 'NO_PROFILE',
  PROFILE_EXISTS: 'PROFILE_EXISTS',
  PROFILE_IN_USE: 'PROFILE_IN_USE',
  LOCKED: 'LOCKED',
  NOT_LOCKED: 'NOT_LOCKED',
  PASSPHRASE_REQUIRED: 'PASSPHRASE_REQUIRED',
  WRONG_PASSPHRASE: 'WRONG_PASSPHRASE',
  KEYCHAIN_UNAVAILABLE: 'KEYCHAIN_UNAVAILABLE',
  KEYCHAIN_FAILED: 'KEYCHAIN_FAILED',
  KEYS_MISSING: 'KEYS_MISSING',
  KEY_FILE_CORRUPT: 'KEY_FILE_CORRUPT',
  DATABASE_KEY_MISMATCH: 'DATABASE_KEY_MISMATCH',
  NOT_CONNECTED: 'NOT_CONNECTED',
  RELAY_UNREACHABLE: 'RELAY_UNREACHABLE',
  USER_ID_TAKEN: 'USER_ID_TAKEN',
  UNKNOWN_USER: 'UNKNOWN_USER',
  UNKNOWN_GROUP: 'UNKNOWN_GROUP',
  GROUP_EXISTS: 'GROUP_EXISTS',
  NOT_A_MEMBER: 'NOT_A_MEMBER',
  FORBIDDEN: 'FORBIDDEN',
  RATE_LIMITED: 'RATE_LIMITED',
  RELAY_REFUSED: 'RELAY_REFUSED',
  KEY_CHANGED: 'KEY_CHANGED',
  RELAY_KEY_CHANGED: 'RELAY_KEY_CHANGED',
  RELAY_NOT_TRUSTED: 'RELAY_NOT_TRUSTED',
  KEY_CHANGED_AGAIN: 'KEY_CHANGED_AGAIN',
  NO_KEY_CHANGE: 'NO_KEY_CHANGE',
  NO_SAFETY_NUMBER: 'NO_SAFETY_NUMBER',
  TOO_LARGE: 'TOO_LARGE',
  NOT_FOUND: 'NOT_FOUND',
  PORT_IN_USE: 'PORT_IN_USE',
  HOSTING_FAILED: 'HOSTING_FAILED',
  SEND_FAILED: 'SEND_FAILED',
  MAILBOX_FULL: 'MAILBOX_FULL',
  QUOTA: 'QUOTA',
  /** A group change the user may not make (not an admin, no invitation, a closed group...). */
  NOT_ALLOWED: 'NOT_ALLOWED',
  /** This device's member list of a group may differ from the others': sending and changes wait. */
  GROUP_OUT_OF_SYNC: 'GROUP_OUT_OF_SYNC',
  /** Others changed the group at the same moment, again and again: try again. */
  GROUP_CHANGED: 'GROUP_CHANGED',
  GROUP_FULL: 'GROUP_FULL',
  /** A membership entry did not verify (the relay's copy, or ours refused by the relay). */
  BAD_ENTRY: 'BAD_ENTRY',
  /** The app cannot reach the system clipboard. */
  CLIPBOARD_UNAVAILABLE: 'CLIPBOARD_UNAVAILABLE',
  /** The profile's database cannot be written (full disk, read-only, damaged, disk error): paused. */
  STORAGE_PROBLEM: 'STORAGE_PROBLEM',
  /** The profile's database could not be opened at start (status.profileProblem says why). */
  DATABASE_DAMAGED: 'DATABASE_DAMAGED',
  /** The request needs the desktop shell (e.g. opening a folder), which is not there. */
  SHELL_UNAVAILABLE: 'SHELL_UNAVAILABLE',
  /** The relay cannot store anything now; the message stays queued and goes out once it can. */
  RELAY_OUT_OF_STORAGE: 'RELAY_OUT_OF_STORAGE',
} as const;
export type ServiceCode = (typeof ServiceCode)[keyof typeof ServiceCode];

/** A failure the renderer may show as is: `message` is always a plain sentence. */
export class ServiceError extends Error {
  constructor(
    readonly code: ServiceCode,
    message: string,
  ) {
    super(message);
    this.name = 'ServiceError';
  }
}

/** What the renderer sees for anything we did not anticipate: no stack, no internals. */
export const INTERNAL_MESSAGE = 'Something went wrong. Please try again.';

/** Context for the wording of a translated error (who or which group the call was about). */
export interface ErrorContext {
  userId?: string | undefined;
  group?: string | undefined;
  /** The sentence for a membership change the core refused as not allowed (E2EE_NOT_ALLOWED). */
  notAllowed?: string | undefined;
  /** The relay being logged in to (connect and reconnects). */
  relayUrl?: string | undefined;
}

/** Translates any thrown value into a ServiceError with a plain sentence (INTERNAL when unknown). */
export function toServiceError(e: unknown, ctx: ErrorContext = {}): ServiceError {
  if (e instanceof ServiceError) return e;
  if (e instanceof RelayError) return fromRelay(e.relayCode, ctx);
  if (e instanceof RelayKeyChangedError) return relayKeyChanged(ctx.relayUrl ?? e.relayUrl);
  if (e instanceof E2EEError) {
    switch (e.code) {
      case ErrorCode.BAD_SIGNATURE:
      case ErrorCode.INVALID_KEY:
      case ErrorCode.MALFORMED:
        // Only the login reports these as errors: the relay's challenge failed its checks.
        if (ctx.relayUrl !== undefined) return relayNotTrusted(ctx.relayUrl);
        return new ServiceError(ServiceCode.INTERNAL, INTERNAL_MESSAGE);
      case ErrorCode.NOT_CONNECTED:
        return new ServiceError(ServiceCode.NOT_CONNECTED, 'You are not connected to a relay.');
      case ErrorCode.IDENTITY_CHANGED:
        return keyChanged(ctx.userId ?? 'This contact');
      case ErrorCode.SAFETY_NUMBER_MISMATCH:
        return keyChangedAgain(ctx.userId ?? 'This contact');
      case ErrorCode.TOO_LARGE:
        return new ServiceError(ServiceCode.TOO_LARGE, 'This message is too long to send.');
      case ErrorCode.NOT_A_MEMBER:
        return notAMember(ctx.group);
      case ErrorCode.NOT_ALLOWED:
        return new ServiceError(
          ServiceCode.NOT_ALLOWED,
          ctx.notAllowed ??
            (ctx.group ? `You cannot make this change to ${ctx.group}.` : 'This is not allowed.'),
        );
      case ErrorCode.GROUP_OUT_OF_SYNC:
        // The core's own sentence (never the relay's text): what differs, and what to compare.
        return new ServiceError(ServiceCode.GROUP_OUT_OF_SYNC, e.message);
      case ErrorCode.BAD_ENTRY:
        return badEntry(ctx.group);
      default:
        return new ServiceError(ServiceCode.INTERNAL, INTERNAL_MESSAGE);
    }
  }
  return new ServiceError(ServiceCode.INTERNAL, INTERNAL_MESSAGE);
}

/** The error for sending to a contact whose key changed and was not yet accepted. */
export function keyChanged(userId: string): ServiceError {
  return new ServiceError(
    ServiceCode.KEY_CHANGED,
    `${userId}'s security key changed. Compare safety numbers and accept the new key before you send.`,
  );
}

/** The error for accepting a key with a safety number that is not the pending key's (another key came since). */
export function keyChangedAgain(userId: string): ServiceError {
  return new ServiceError(
    ServiceCode.KEY_CHANGED_AGAIN,
    `${userId}'s security key changed again since that safety number was shown. Compare the new number before you accept.`,
  );
}

/** The error for accepting or rejecting when no key change of the contact waits for a decision. */
export function noKeyChange(userId: string): ServiceError {
  return new ServiceError(
    ServiceCode.NO_KEY_CHANGE,
    `No new security key of ${userId} is waiting for your decision.`,
  );
}

/** The relay at `relayUrl` presented another key than the first time: nothing is sent there. */
export function relayKeyChanged(relayUrl: string): ServiceError {
  return new ServiceError(
    ServiceCode.RELAY_KEY_CHANGED,
    `The relay at ${relayUrl} is not the one you used before: its key changed. Sealed did not log in and sends nothing there until you decide.`,
  );
}

/** The relay's challenge failed its checks (it could not prove the key it presented). */
export function relayNotTrusted(relayUrl: string): ServiceError {
  return new ServiceError(
    ServiceCode.RELAY_NOT_TRUSTED,
    `The relay at ${relayUrl} could not prove its identity, so Sealed did not log in. Try again later or choose another relay.`,
  );
}

/** A membership entry that did not verify: nothing was changed. */
function badEntry(group: string | undefined): ServiceError {
  return new ServiceError(
    ServiceCode.BAD_ENTRY,
    `The relay sent a change to ${group ?? 'the group'} that does not verify. Sealed ignored it and changed nothing.`,
  );
}

/** The error for a group the user is not (or no longer) a member of. */
export function notAMember(group: string | undefined): ServiceError {
  return new ServiceError(
    ServiceCode.NOT_A_MEMBER,
    group ? `You are not a member of the group ${group}.` : 'You are not a member of this group.',
  );
}

function fromRelay(relayCode: string, ctx: ErrorContext): ServiceError {
  switch (relayCode) {
    case 'AUTH_FAILED':
      return new ServiceError(
        ServiceCode.USER_ID_TAKEN,
        'The relay refused your user id: it is registered to another key. Choose another relay or user id.',
      );
    case 'UNKNOWN_USER':
      return new ServiceError(
        ServiceCode.UNKNOWN_USER,
        ctx.userId ? `There is no user ${ctx.userId} on this relay.` : 'There is no such user on this relay.',
      );
    case 'UNKNOWN_GROUP':
      return new ServiceError(
        ServiceCode.UNKNOWN_GROUP,
        ctx.group ? `There is no group ${ctx.group} on this relay.` : 'There is no such group on this relay.',
      );
    case 'GROUP_EXISTS':
      return new ServiceError(
        ServiceCode.GROUP_EXISTS,
        ctx.group ? `A group named ${ctx.group} already exists.` : 'A group with this name already exists.',
      );
    case 'NOT_A_MEMBER':
      return notAMember(ctx.group);
    case 'FORBIDDEN':
      return new ServiceError(
        ServiceCode.FORBIDDEN,
        ctx.group ? `The relay did not allow this change to ${ctx.group}.` : 'The relay did not allow this.',
      );
    case 'STALE_ENTRY':
      return new ServiceError(
        ServiceCode.GROUP_CHANGED,
        `Others changed ${ctx.group ?? 'the group'} at the same moment. Please try again.`,
      );
    case 'GROUP_FULL':
      return new ServiceError(
        ServiceCode.GROUP_FULL,
        `${ctx.group ?? 'The group'} is full: the relay allows no more people in it.`,
      );
    case 'BAD_ENTRY':
      return new ServiceError(
        ServiceCode.BAD_ENTRY,
        `The relay refused the change to ${ctx.group ?? 'the group'} as invalid. Nothing was changed.`,
      );
    case 'RATE_LIMITED':
      return new ServiceError(
        ServiceCode.RATE_LIMITED,
        'You are sending too fast. Wait a moment and try again.',
      );
    case 'MAILBOX_FULL':
      return new ServiceError(
        ServiceCode.MAILBOX_FULL,
        ctx.userId
          ? `${ctx.userId}'s mailbox on this relay is full: the message was not sent. Try again once they have read their messages.`
          : 'The recipient’s mailbox on this relay is full: the message was not sent.',
      );
    case 'QUOTA':
      return new ServiceError(ServiceCode.QUOTA, 'This relay’s limit for that was reached.');
    case 'STORAGE_UNAVAILABLE':
      return new ServiceError(
        ServiceCode.RELAY_OUT_OF_STORAGE,
        'The relay is out of storage. Your message is kept here and goes out by itself once the relay has room again.',
      );
    default:
      return new ServiceError(ServiceCode.RELAY_REFUSED, 'The relay refused the request. Please try again.');
  }
}
