/**
 * `npm run chat` and the relay's key (issue 8): it shows the relay's fingerprint on the first connection,
 * keeps the key in its state, refuses to log in when another relay answers at the same address (saying
 * what happened and what to do), and logs in once --accept-relay-key names the new key's fingerprint.
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatFingerprint } from '../../src-main/core/index.js';
import { CliFixture } from './helpers.js';

let fx: CliFixture;
afterEach(async () => {
  await fx.cleanup();
});

describe('npm run chat: the relay key', () => {
  it('pins the relay key, refuses a changed one with a warning, accepts it when asked explicitly', async () => {
    fx = new CliFixture();
    const first = await fx.relay({ dataDir: path.join(fx.dir, 'relay-a') });
    const url = first.url;
    const dan = await fx.connected(url, 'dan');
    await dan.waitFor(`* Relay key fingerprint: ${formatFingerprint(first.fingerprint)}`);
    dan.type('/quit');
    expect(await dan.exited).toBe(0);
    await first.close();

    // Another relay (another key) now answers at the same address.
    const second = await fx.relay({ port: first.port });
    const again = fx.chat(url, 'dan');
    expect(await again.exited).toBe(1);
    const screen = again.screen;
    expect(screen).toContain(`! The relay at ${url} is not the one you used before: its key changed`);
    expect(screen).toContain(`key the first time: ${formatFingerprint(first.fingerprint)}`);
    expect(screen).toContain(`key now:            ${formatFingerprint(second.fingerprint)}`);
    expect(screen).toContain(`--accept-relay-key ${second.fingerprint}`);
    expect(screen).not.toContain('* Connected to');

    // A fingerprint that is not the one presented changes nothing.
    const wrong = fx.chatWith(url, 'dan', ['--accept-relay-key', first.fingerprint]);
    expect(await wrong.exited).toBe(1);
    expect(wrong.screen).toContain('its key changed');

    const accepted = fx.chatWith(url, 'dan', ['--accept-relay-key', formatFingerprint(second.fingerprint)]);
    await accepted.waitFor(
      `* Accepted the relay's new key (fingerprint ${formatFingerprint(second.fingerprint)})`,
    );
    await accepted.waitFor(`* Connected to ${url} as dan.`);
    accepted.type('/quit');
    expect(await accepted.exited).toBe(0);

    // From now on the new key is the pinned one.
    const later = await fx.connected(url, 'dan');
    later.type('/quit');
    expect(await later.exited).toBe(0);
  });

  it('a user id typed in capitals is the lower-case user', async () => {
    fx = new CliFixture();
    const relay = await fx.relay();
    const chat = fx.chat(relay.url, 'ERIN');
    await chat.waitFor(`* Connected to ${relay.url} as erin.`);
    chat.type('/quit');
    expect(await chat.exited).toBe(0);
  });
});
