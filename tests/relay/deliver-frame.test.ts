/** The hand-serialised deliver frame is exactly the JSON a client parses with the wire schema. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { deliverFrame } from '../../src-main/relay/router.js';
import { RelayFrame, parseFrameByType } from '../../src-main/core/protocol/wire.js';
import type { QueueItem } from '../../src-main/relay/queue/index.js';
import type { RelayEvent } from '../../src-main/core/protocol/wire.js';

const name = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/);
const userId = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,20}$/);
const item: fc.Arbitrary<Omit<QueueItem, 'event'> & { event?: RelayEvent }> = fc.record(
  {
    seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    recipient: userId,
    kind: fc.constantFrom('direct' as const, 'group' as const, 'receipt' as const, 'event' as const),
    from: userId,
    id: fc.stringMatching(/^[A-Za-z0-9_-]{8,40}$/),
    group: name,
    body: fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => Buffer.from(b).toString('base64')),
    event: fc.oneof(
      userId.map((userId) => ({ type: 'userCreated' as const, userId })),
      fc
        .tuple(name, fc.integer({ min: 0, max: 0xffffffff }), fc.uint8Array({ minLength: 1, maxLength: 600 }))
        .map(([group, epoch, entry]) => ({
          type: 'groupEntry' as const,
          group,
          epoch,
          entry: Buffer.from(entry).toString('base64'),
        })),
    ),
    ts: fc.integer({ min: 0, max: 2 ** 45 }),
  },
  { requiredKeys: ['seq', 'recipient', 'kind', 'ts'] },
);

describe('deliverFrame', () => {
  it('equals JSON.stringify of the same fields and passes the client schema', () => {
    fc.assert(
      fc.property(item, (it) => {
        const text = deliverFrame({ ...it, event: it.event && JSON.stringify(it.event) });
        const { recipient: _recipient, ...fields } = it;
        expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify({ t: 'deliver', ...fields })));
        expect(parseFrameByType(RelayFrame, text).ok).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
