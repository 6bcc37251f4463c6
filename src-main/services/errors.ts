/**
 * The one error type that crosses from the main-process services to the renderer: a stable `code` to
 * branch on and a `message` that is a plain sentence a person can read. Core and relay errors are
 * translated here, with our own wording: a relay's error text is never shown, since the relay is
 * untrusted and could put anything in it.
 */
import { E2EEError, ErrorCode, RelayError } from '../core/errors.js';

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
  KEY_CHANGED_AGAIN: 'KEY_CHANGED_AGAIN',
  NO_KEY_CHANGE: 'NO_KEY_CHANGE',
  NO_SAFETY_NUMBER: 'NO_SAFETY_NUMBER',
  TOO_LARGE: 'TOO_LARGE',
  NOT_FOUND: 'NOT_FOUND',
  PORT_IN_USE: 'PORT_IN_USE',
  HOSTING_FAILED: 'HOSTING_FAILED',
  SEND_FAILED: 'SEND_FAILED',
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
}

/** Translates any thrown value into a ServiceError with a plain sentence (INTERNAL when unknown). */
export function toServiceError(e: unknown, ctx: ErrorContext = {}): ServiceError {
  if (e instanceof ServiceError) return e;
  if (e instanceof RelayError) return fromRelay(e.relayCode, ctx);
  if (e instanceof E2EEError) {
    switch (e.code) {
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
      return new ServiceError(ServiceCode.FORBIDDEN, 'Only the group’s creator can do that.');
    case 'RATE_LIMITED':
      return new ServiceError(
        ServiceCode.RATE_LIMITED,
        'You are sending too fast. Wait a moment and try again.',
      );
    default:
      return new ServiceError(ServiceCode.RELAY_REFUSED, 'The relay refused the request. Please try again.');
  }
}
