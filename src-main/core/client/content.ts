/**
 * The plaintext inside every encrypted message: what kind of content it is and the message id, so the
 * relay cannot swap ids between messages (recipients check the inner id against the envelope's).
 *
 *   u8 contentType | str messageId | [str groupId for SENDER_KEY] | data (the rest)
 */
import { Reader, Writer } from '../encoding.js';
import { ErrorCode, ProtocolError } from '../errors.js';

export const ContentType = {
  TEXT: 1,
  BINARY: 2,
  /** A sender-key distribution message for a group, carried in a pairwise session. */
  SENDER_KEY: 3,
} as const;
export type ContentType = (typeof ContentType)[keyof typeof ContentType];

export interface Content {
  readonly type: ContentType;
  readonly id: string;
  readonly group?: string | undefined;
  readonly data: Uint8Array;
}

/** Encodes inner content. */
export function encodeContent(c: Content): Uint8Array {
  const w = new Writer(64 + c.data.length).u8(c.type).str(c.id);
  if (c.type === ContentType.SENDER_KEY) w.str(c.group ?? '');
  return w.fixed(c.data).finish();
}

/** Decodes inner content; MALFORMED on anything unexpected. */
export function decodeContent(bytes: Uint8Array): Content {
  const r = new Reader(bytes);
  const type = r.u8();
  if (type !== ContentType.TEXT && type !== ContentType.BINARY && type !== ContentType.SENDER_KEY) {
    throw new ProtocolError(ErrorCode.MALFORMED, `unknown content type ${type}`);
  }
  const id = r.str(64);
  const group = type === ContentType.SENDER_KEY ? r.str(64) : undefined;
  return { type, id, group, data: r.rest().slice() };
}
