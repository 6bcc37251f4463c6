/**
 * Minimal big-endian binary encoding for headers and serialised state.
 * Variable-length fields carry a u16 (strings) or u32 (bytes) length prefix so that two different
 * field lists can never encode to the same bytes (no ambiguity in associated data or KDF inputs).
 */
import { ErrorCode, ProtocolError } from './errors.js';

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** Appends fields to a growing buffer. */
export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private len = 0;

  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer);
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.reserve(1);
    this.view.setUint8(this.len, v);
    this.len += 1;
    return this;
  }

  u16(v: number): this {
    this.reserve(2);
    this.view.setUint16(this.len, v);
    this.len += 2;
    return this;
  }

  u32(v: number): this {
    this.reserve(4);
    this.view.setUint32(this.len, v);
    this.len += 4;
    return this;
  }

  /** Unsigned 53-bit integer as u64 (timestamps, counters). */
  u64(v: number): this {
    this.reserve(8);
    this.view.setUint32(this.len, Math.floor(v / 2 ** 32));
    this.view.setUint32(this.len + 4, v >>> 0);
    this.len += 8;
    return this;
  }

  /** Raw bytes of a length both sides already know. */
  fixed(b: Uint8Array): this {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  /** u32 length prefix + bytes. */
  bytes(b: Uint8Array): this {
    return this.u32(b.length).fixed(b);
  }

  /** u16 length prefix + UTF-8. */
  str(s: string): this {
    const b = utf8.encode(s);
    if (b.length > 0xffff) throw new RangeError('string too long to encode');
    return this.u16(b.length).fixed(b);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** Reads fields in order; any overrun or trailing byte is a MALFORMED ProtocolError. */
export class Reader {
  private pos = 0;
  private readonly view: DataView;

  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get offset(): number {
    return this.pos;
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new ProtocolError(ErrorCode.MALFORMED, 'message truncated');
  }

  u8(): number {
    this.need(1);
    return this.view.getUint8(this.pos++);
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  u64(): number {
    const hi = this.u32();
    const lo = this.u32();
    const v = hi * 2 ** 32 + lo;
    if (!Number.isSafeInteger(v)) throw new ProtocolError(ErrorCode.MALFORMED, 'integer out of range');
    return v;
  }

  fixed(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  bytes(max = 1 << 24): Uint8Array {
    const n = this.u32();
    if (n > max) throw new ProtocolError(ErrorCode.MALFORMED, 'field too long');
    return this.fixed(n);
  }

  str(max = 0xffff): string {
    const n = this.u16();
    if (n > max) throw new ProtocolError(ErrorCode.MALFORMED, 'string too long');
    try {
      return utf8Strict.decode(this.fixed(n));
    } catch {
      throw new ProtocolError(ErrorCode.MALFORMED, 'invalid UTF-8');
    }
  }

  /** Remaining bytes (consumes them). */
  rest(): Uint8Array {
    const out = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return out;
  }

  end(): void {
    if (this.pos !== this.buf.length) throw new ProtocolError(ErrorCode.MALFORMED, 'trailing bytes');
  }
}

/** Constant-time equality for secrets and tags of the same public length. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Concatenates byte arrays. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export const toHex = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
export const utf8Encode = (s: string): Uint8Array => utf8.encode(s);
/** Strict UTF-8 decoding: invalid sequences throw MALFORMED. */
export function utf8Decode(b: Uint8Array): string {
  try {
    return utf8Strict.decode(b);
  } catch {
    throw new ProtocolError(ErrorCode.MALFORMED, 'invalid UTF-8');
  }
}
