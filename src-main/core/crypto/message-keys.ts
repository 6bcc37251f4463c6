/**
 * Per-message AES-256-GCM key and nonce from a one-time message key mk (the output of the HMAC chain
 * step), bound to the message's header and path (direct or group) by the label:
 *
 *   key   = HMAC-SHA-256(mk, label || 0x01 || header)
 *   nonce = HMAC-SHA-256(mk, label || 0x02 || header)[0..12)
 *
 * Each mk is used for exactly one message, so every (key, nonce) pair is used once.
 */
import { hmacSha256 } from './primitives.js';

const KEY = new Uint8Array([0x01]);
const NONCE = new Uint8Array([0x02]);

/** The AES key (32 bytes) and nonce (12 bytes) of one message. */
export function messageKeys(
  mk: Uint8Array,
  label: Uint8Array,
  header: Uint8Array,
): { key: Uint8Array; nonce: Uint8Array } {
  return {
    key: hmacSha256(mk, label, KEY, header),
    nonce: hmacSha256(mk, label, NONCE, header).subarray(0, 12),
  };
}
