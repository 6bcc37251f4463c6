/**
 * Per-message AES-256-GCM key and nonce from a one-time message key mk (the output of the HMAC chain
 * step) of a direct message, bound to the message's header by the label (group messages use the
 * message key itself: docs/PROTOCOL.md "Group messages"):
 *
 *   key   = HMAC-SHA-256(mk, label || 0x01 || header)
 *   nonce = HMAC-SHA-256(mk, label || 0x02 || header)[0..12)
 *
 * Each mk is used for exactly one message, so every (key, nonce) pair is used once.
 */
import { hmacSha256 } from './primitives.js';

/** `label || 0x01` and `label || 0x02` of each label used, made once (two HMAC updates, not three). */
const prefixes = new Map<Uint8Array, readonly [Uint8Array, Uint8Array]>();

function prefixesOf(label: Uint8Array): readonly [Uint8Array, Uint8Array] {
  let p = prefixes.get(label);
  if (!p) {
    const key = new Uint8Array(label.length + 1);
    key.set(label);
    key[label.length] = 0x01;
    const nonce = key.slice();
    nonce[label.length] = 0x02;
    p = [key, nonce];
    prefixes.set(label, p);
  }
  return p;
}

/** The AES key (32 bytes) and nonce (12 bytes) of one message. */
export function messageKeys(
  mk: Uint8Array,
  label: Uint8Array,
  header: Uint8Array,
): { key: Uint8Array; nonce: Uint8Array } {
  const [key, nonce] = prefixesOf(label);
  return {
    key: hmacSha256(mk, key, header),
    nonce: hmacSha256(mk, nonce, header).subarray(0, 12),
  };
}
