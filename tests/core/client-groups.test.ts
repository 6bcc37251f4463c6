/**
 * The client's group state (src-main/core/client/groups.ts): a member who joins learns the creator from
 * the relay's join event; a join event queued by an older relay, without a creator, keeps the creator
 * the last `ready` snapshot named instead of forgetting it.
 */
import { describe, expect, it } from 'vitest';
import { Groups } from '../../src-main/core/client/groups.js';

const now = (): number => 1_000;

describe('client groups', () => {
  it('takes the creator from the join event', () => {
    const groups = new Groups('bob', {}, now);
    groups.apply({ type: 'groupJoin', group: 'team', creator: 'alice', members: ['alice', 'bob'] });
    expect(groups.list()).toEqual([{ group: 'team', creator: 'alice', members: ['alice', 'bob'] }]);
  });

  it('keeps the snapshot creator when a queued join event has none', () => {
    const groups = new Groups('bob', {}, now);
    groups.sync([{ group: 'team', creator: 'alice', members: ['alice', 'bob'] }]);
    groups.apply({ type: 'groupJoin', group: 'team', members: ['alice', 'bob', 'carol'] });
    expect(groups.list()).toEqual([{ group: 'team', creator: 'alice', members: ['alice', 'bob', 'carol'] }]);
  });
});
