/**
 * `npm run chat` when the relay is not there, is not a relay, or refuses us (issue 7): commands work
 * from the first moment, /quit included; each failure is explained once, in a sentence that says
 * what to check; the prompt shows that it keeps trying; commands that need the relay run once it
 * answers.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CliFixture } from './helpers.js';

let fx: CliFixture;
afterEach(() => fx.cleanup());

/** A port nothing listens on: a relay's, once it has closed (reused below to start one late). */
async function freePort(): Promise<number> {
  const probe = await new CliFixture().relay();
  await probe.close();
  return probe.port;
}

describe('npm run chat: connecting', () => {
  it('before the relay is up: explains once, shows it keeps trying, answers /help, and runs queued commands once it connects', async () => {
    fx = new CliFixture();
    const port = await freePort();
    const url = `ws://127.0.0.1:${port}`;
    const carol = fx.chat(url, 'carol');
    const hint = `! Nothing is listening at 127.0.0.1:${port}: check that the relay is running (npm run relay) and that the port in --relay is right. Still trying; /quit to stop.`;
    await carol.waitFor(hint);
    await carol.waitFor('(connecting, attempt 3) carol> ');
    expect(carol.screen.split(hint)).toHaveLength(2); // said once, not at every attempt
    expect(carol.screen).not.toContain('ECONNREFUSED');

    let mark = carol.mark;
    carol.type('/help');
    await carol.waitFor('* Commands:\n  /dm USER TEXT', { from: mark });
    carol.type('/create early');
    await carol.waitFor('* Not connected yet: /create runs once the relay answers (/quit to give up).', {
      from: mark,
    });

    mark = carol.mark;
    const relay = await fx.relay({ port });
    await carol.waitFor(`* Connected to ${url} as carol.`, { from: mark });
    await carol.waitFor(
      '* Created group early, you its admin. It is invite-only: /invite early USER invites someone, /link early makes an invite link.',
      { from: mark },
    );

    mark = carol.mark;
    await relay.close();
    await carol.waitFor(
      '! Lost the connection to the relay (code 1001, relay shutting down); reconnecting.',
      {
        from: mark,
      },
    );
    await carol.waitFor('(reconnecting, attempt', { from: mark });

    mark = carol.mark;
    carol.type('/quit');
    expect(await carol.exited).toBe(0);
    expect(carol.since(mark)).not.toMatch(/reconnecting\.|Lost the connection/);
  });

  it('/quit works while the relay is unreachable, and says which commands did not run', async () => {
    fx = new CliFixture();
    const carol = fx.chat(`ws://127.0.0.1:${await freePort()}`, 'carol');
    await carol.waitFor('! Nothing is listening at');
    carol.type('/dm bob are you there');
    await carol.waitFor('* Not connected yet: /dm runs once the relay answers');
    carol.type('/quit');
    expect(await carol.exited).toBe(0);
    expect(carol.screen).toContain('! 1 command did not run: the relay never answered.');
  });

  it('a wrong address is explained in a sentence: TLS to a plain relay, a web server, an unknown host', async () => {
    fx = new CliFixture();
    const relay = await fx.relay();
    const web: Server = createServer((_req, res) => res.end('a web page\n'));
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    const webPort = (web.address() as AddressInfo).port;
    try {
      const cases = [
        {
          url: relay.url.replace('ws://', 'wss://'),
          says: `! The TLS handshake with 127.0.0.1:${relay.port} failed: the server there does not speak TLS (npm run relay speaks it only with --tls-cert and --tls-key), so use ws:// instead of wss://.`,
        },
        {
          url: `ws://127.0.0.1:${webPort}`,
          says: `! 127.0.0.1:${webPort} is a web server but not a Sealed relay (it answered HTTP 200): check the address and port in --relay.`,
        },
        {
          url: 'ws://no-such-relay.invalid:8787',
          says: '! Cannot find the host "no-such-relay.invalid"',
        },
      ];
      const chats = cases.map(({ url }, i) => fx.chat(url, `user${i}`));
      await Promise.all(chats.map((chat, i) => chat.waitFor(cases[i]!.says)));
      for (const chat of chats) {
        await chat.waitFor(/\(connecting, attempt \d+\) user\d> /);
        chat.type('/quit');
      }
      for (const chat of chats) {
        expect(await chat.exited).toBe(0);
        expect(chat.screen).not.toMatch(/^\s+at /m);
      }
    } finally {
      await new Promise((resolve) => web.close(resolve));
    }
  });

  it('a user id registered with another key: says why and what to do, then exits with 1', async () => {
    fx = new CliFixture();
    const relay = await fx.relay();
    const first = await fx.connected(relay.url, 'dave');
    first.type('/quit');
    await first.exited;
    // The same user id from another state folder: another identity key.
    const other = fx.chat(relay.url, 'dave', `${fx.dir}/elsewhere`);
    expect(await other.exited).toBe(1);
    expect(other.screen).toContain(
      '! The relay refused dave: that user id is registered there with another key, which this state folder does not hold. Start with the --state folder that does, or choose another --user.',
    );
  });
});
