/**
 * The plaintext inside every encrypted message: what kind of content it is and the message id, so the
 * relay cannot swap ids between messages (recipients check the inner id against the envelope's). Group
 * content also carries the sender's view of the group's membership log (its epoch and head hash), under
 * the sender key's signature, so members notice when their logs differ (docs/PROTOCOL.md, "Group
 * membership").
 *
 *   u8 contentType | str messageId | [SENDER_KEY: str groupId] | [group content: u32 epoch | 32 head]
 *   | data (the rest)
 *
 * TEXT and BINARY travel in direct messages only; GROUP_TEXT and GROUP_BINARY in group messages only;
 * SENDER_KEY (a group's sender key, in a direct message) is group content too.
 */
import { Reader, Writer } from '../encoding.js';
import { ErrorCode, ProtocolError } from '../errors.js';

export const ContentType = {
  TEXT: 1,
  BINARY: 2,
  /** A sender-key distribution message for a group, carried in a pairwise session. */
  SENDER_KEY: 3,
  GROUP_TEXT: 4,
  GROUP_BINARY: 5,
} as const;
export type ContentType = (typeof ContentType)[keyof typeof ContentType];

const HEAD_BYTES = 32;

/** The sender's view of a group's log when it sent. */
export interface GroupView {
  readonly epoch: number;
  readonly head: Uint8Array;
}

export interface Content {
  readonly type: ContentType;
  readonly id: string;
  readonly group?: string | undefined;
  /** Present exactly for group content (SENDER_KEY, GROUP_TEXT, GROUP_BINARY). */
  readonly view?: GroupView | undefined;
  readonly data: Uint8Array;
}

/** True for the types that carry a group view. */
export const isGroupContent = (type: ContentType): boolean =>
  type === ContentType.SENDER_KEY || type === ContentType.GROUP_TEXT || type === ContentType.GROUP_BINARY;

/** Encodes inner content. */
export function encodeContent(c: Content): Uint8Array {
  const w = new Writer(64 + c.data.length).u8(c.type).str(c.id);
  if (c.type === ContentType.SENDER_KEY) w.str(c.group ?? '');
  if (isGroupContent(c.type)) {
    if (!c.view) throw new TypeError('group content carries the sender’s view of the group');
    w.u32(c.view.epoch).fixed(c.view.head);
  }
  return w.fixed(c.data).finish();
}

/** Decodes inner content; MALFORMED on anything unexpected. */
export function decodeContent(bytes: Uint8Array): Content {
  const r = new Reader(bytes);
  const type = r.u8();
  if (type < ContentType.TEXT || type > ContentType.GROUP_BINARY) {
    throw new ProtocolError(ErrorCode.MALFORMED, `unknown content type ${type}`);
  }
  const id = r.str(64);
  const group = type === ContentType.SENDER_KEY ? r.str(64) : undefined;
  const view = isGroupContent(type as ContentType)
    ? { epoch: r.u32(), head: r.fixed(HEAD_BYTES).slice() }
    : undefined;
  return { type: type as ContentType, id, group, view, data: r.rest().slice() };
}
