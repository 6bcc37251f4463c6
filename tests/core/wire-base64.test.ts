/**
 * Binary fields on the wire are canonical padded base64 (RFC 4648 §4): the schemas accept a body exactly
 * when the reference definition does, and never one that could break out of a hand-built JSON frame.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ClientFrame, parseFrameByType } from '../../src-main/core/protocol/wire.js';

/** The definition, written the plain way. */
const reference = (s: string): boolean =>
  s.length > 0 && s.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(s);

const accepted = (body: string): boolean =>
  parseFrameByType(ClientFrame, JSON.stringify({ t: 'send', rid: 1, to: 'bob', id: 'message-1', body })).ok;

describe('base64 fields', () => {
  it('accept exactly canonical padded base64', () => {
    const alphabet = fc.constantFrom(...'ABCXYZabcxyz0189+/=', '"', '\\', '\n', ' ', '-', '_', 'é');
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 24 }), (chars) => {
        const s = chars.join('');
        expect(accepted(s)).toBe(reference(s));
      }),
      { numRuns: 20_000 },
    );
    for (const bytes of [0, 1, 2, 3, 100, 1024])
      expect(accepted(Buffer.alloc(bytes, 0xfb).toString('base64'))).toBe(bytes > 0);
    for (const bad of ['QQ=A', 'Q===', '=QQQ', 'QQ==QQ==', 'QUJD"', 'QU\\D', 'QUJDRA'])
      expect(accepted(bad)).toBe(false);
  });
});
