/**
 * Two `npm run chat` with the same identity (user, relay and state folder) used to corrupt each
 * other: the relay replaced the first connection and a message was lost as E2EE_REPLAY (issue 7).
 * The second is now refused with a sentence, and the first keeps working.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { CliFixture } from './helpers.js';

const fx = new CliFixture();
afterAll(() => fx.cleanup());

describe('npm run chat: one process per identity', () => {
  it('a second chat as the same user with the same state is refused, and the first keeps working', async () => {
    const relay = await fx.relay();
    const [alice, bob] = await Promise.all([
      fx.connected(relay.url, 'alice'),
      fx.connected(relay.url, 'bob'),
    ]);

    const second = fx.chat(relay.url, 'alice');
    expect(await second.exited).toBe(1);
    expect(second.screen).toContain(
      `! Another chat is already running as alice on this relay with ${fx.stateDir}: use that one, or quit it first`,
    );
    expect(second.screen).not.toContain('Connected');

    // Both directions still work for the first, with no decryption error.
    let a = alice.mark;
    const b = bob.mark;
    bob.type('/dm alice are you still there?');
    await alice.waitFor('< bob: are you still there?', { from: a });
    alice.type('/dm bob yes');
    await bob.waitFor('< alice: yes', { from: b });
    expect(alice.since(a)).not.toMatch(/Could not decrypt|Lost the connection|Another session/);
    expect(bob.since(b)).not.toMatch(/Could not decrypt/);

    // Once the first has quit, the identity can be used again.
    alice.type('/quit');
    expect(await alice.exited).toBe(0);
    const again = await fx.connected(relay.url, 'alice');
    a = again.mark;
    bob.type('/dm alice welcome back');
    await again.waitFor('< bob: welcome back', { from: a });
  });
});
