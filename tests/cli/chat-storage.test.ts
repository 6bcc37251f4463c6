/**
 * `npm run chat` on a full disk (issue 11): bob's --state folder is a small tmpfs mounted here (root,
 * as CI runs; elsewhere skipped with the reason printed), filled while alice's messages arrive. Bob's
 * terminal says what is wrong in the app's words, refuses to send with the same sentence, and once the
 * space is back prints every message once (none lost, none twice) and sends again.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, it } from 'vitest';
import { fillDisk } from '../fill-disk.js';
import { CliFixture } from './helpers.js';

const FULL =
  'Your disk is full. Sealed cannot save new messages, so they stay on the relay until you free some space.';

const mountDir = mkdtempSync(path.join(tmpdir(), 'sealed-cli-tmpfs-'));
const refusal: string | null = (() => {
  if (process.getuid?.() !== 0) return 'not root';
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0700', 'tmpfs', mountDir]);
  return r.status === 0 ? null : `mount refused: ${String(r.stderr).trim()}`;
})();
if (refusal) console.log(`chat-storage: skipped: ${refusal}`);

const fx = new CliFixture();
afterAll(async () => {
  await fx.cleanup();
  if (!refusal) spawnSync('umount', ['-l', mountDir]);
  rmSync(mountDir, { recursive: true, force: true });
});

describe.skipIf(refusal !== null)('npm run chat on a full disk', () => {
  it(
    'says so, refuses to send with the sentence, and loses nothing once space is back',
    { timeout: 120_000 },
    async () => {
      const url = (await fx.relay()).url;
      const alice = await fx.connected(url, 'alice');
      const bob = fx.chat(url, 'bob', mountDir, { SEALED_STORAGE_PROBE_MS: '200' });
      await bob.waitFor(`* Connected to ${url} as bob.`);
      alice.type('/dm bob before');
      await bob.waitFor('< alice: before');

      const filler = fillDisk(mountDir);
      const b = bob.mark;
      const texts = Array.from(
        { length: 20 },
        (_, i) => `m${String(i).padStart(2, '0')} ${'y'.repeat(20_000)}`,
      );
      for (const text of texts) alice.type(`/dm bob ${text}`);
      await bob.waitFor(`! ${FULL} Sending is paused.`, { from: b });

      const r = bob.mark;
      bob.type('/dm alice during');
      await bob.waitFor(`! Not sent: sending is paused. ${FULL}`, { from: r });

      rmSync(filler);
      await bob.waitFor('* The state file can be written again: receiving and sending resume.', { from: b });
      await bob.waitFor(`< alice: ${texts.at(-1)!}`, { from: b, timeoutMs: 60_000 });
      const shown = bob.since(b);
      // Every message is shown once: one shown just before its write failed comes again from the relay
      // once it can be saved, and is not printed a second time.
      for (const text of texts) {
        const times = shown.split(`< alice: ${text}`).length - 1;
        if (times !== 1) throw new Error(`${text.slice(0, 3)} shown ${times} times`);
      }

      const a = alice.mark;
      bob.type('/dm alice after');
      await alice.waitFor('< bob: after', { from: a });
    },
  );
});

describe.skipIf(refusal !== null)('npm run chat with a relay out of storage', () => {
  it('says the message is kept, and shows it sent once the relay has room', { timeout: 60_000 }, async () => {
    const relayDir = path.join(mountDir, 'relay');
    const url = (await fx.relay({ dataDir: relayDir, storageProbeIntervalMs: 100 })).url;
    const bob = await fx.connected(url, 'bob');
    const alice = await fx.connected(url, 'alice');
    alice.type('/dm bob hello');
    await bob.waitFor('< alice: hello');

    const filler = fillDisk(mountDir, 'filler-relay');
    const a = alice.mark;
    alice.type('/dm bob while the relay is full');
    await alice.waitFor(
      '* #2 to bob is kept: the relay is out of storage. It goes out by itself once the relay has room again.',
      { from: a },
    );
    rmSync(filler);
    await alice.waitFor('> #2 to bob: while the relay is full', { from: a, timeoutMs: 20_000 });
    await bob.waitFor('< alice: while the relay is full', { timeoutMs: 20_000 });
  });
});
