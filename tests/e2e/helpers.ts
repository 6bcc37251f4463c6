/** Helpers for end-to-end tests of clients and a real relay on 127.0.0.1. */
import { E2EEClient, type E2EEClientEvents, type E2EEClientOptions } from '../../src-main/core/index.js';

/** Records every event a client emits, in order, and lets a test await one. */
export class Recorder {
  readonly events: { name: keyof E2EEClientEvents; payload: unknown }[] = [];
  private waiters: { match: (name: string, payload: unknown) => boolean; resolve: (p: unknown) => void }[] =
    [];

  constructor(readonly client: E2EEClient) {
    const names: (keyof E2EEClientEvents)[] = [
      'connect',
      'disconnect',
      'e2eeError',
      'message',
      'binaryMessage',
      'groupMessage',
      'groupBinaryMessage',
      'ack',
      'userCreated',
      'userDeleted',
      'groupCreated',
      'groupDeleted',
      'groupJoin',
      'groupLeave',
      'groupMemberJoin',
      'groupMemberLeave',
      'groupInvitation',
      'groupMemberInvited',
      'groupJoinRequest',
      'groupRoleChanged',
      'groupPolicyChanged',
      'groupOutOfSync',
      'groupInSync',
      'identityChanged',
      'messagesHeld',
      'keysRotated',
    ];
    for (const name of names) {
      client.on(name, ((payload: unknown) => {
        this.events.push({ name, payload });
        this.waiters = this.waiters.filter((w) => {
          if (!w.match(name, payload)) return true;
          w.resolve(payload);
          return false;
        });
      }) as never);
    }
    client.on('error', () => undefined);
  }

  /** Payloads of every event `name` so far. */
  all<K extends keyof E2EEClientEvents>(name: K): E2EEClientEvents[K][0][] {
    return this.events.filter((e) => e.name === name).map((e) => e.payload as E2EEClientEvents[K][0]);
  }

  /** Resolves with the first (past or future) event `name` matching `pred`. */
  wait<K extends keyof E2EEClientEvents>(
    name: K,
    pred: (p: E2EEClientEvents[K][0]) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<E2EEClientEvents[K][0]> {
    const past = this.events.find((e) => e.name === name && pred(e.payload as E2EEClientEvents[K][0]));
    if (past) return Promise.resolve(past.payload as E2EEClientEvents[K][0]);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.client.userId}: timed out waiting for ${name}`)),
        timeoutMs,
      );
      this.waiters.push({
        match: (n, p) => n === name && pred(p as E2EEClientEvents[K][0]),
        resolve: (p) => {
          clearTimeout(timer);
          resolve(p as E2EEClientEvents[K][0]);
        },
      });
    });
  }

  /** Waits until `count` events `name` matching `pred` have been seen. */
  async waitCount<K extends keyof E2EEClientEvents>(
    name: K,
    count: number,
    pred: (p: E2EEClientEvents[K][0]) => boolean = () => true,
    timeoutMs = 20_000,
  ): Promise<E2EEClientEvents[K][0][]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = this.all(name).filter(pred);
      if (got.length >= count) return got;
      if (Date.now() > deadline) {
        throw new Error(`${this.client.userId}: ${got.length}/${count} ${name} events before timeout`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** A connected client with an event recorder. */
export async function connectClient(
  url: string,
  userId: string,
  extra: Partial<E2EEClientOptions> = {},
): Promise<{ client: E2EEClient; rec: Recorder }> {
  const client = new E2EEClient({ url, userId, reconnectDelayMs: { min: 20, max: 200 }, ...extra });
  const rec = new Recorder(client);
  await client.connect();
  return { client, rec };
}

/** Resolves when `cond()` is true (polling), or throws after `timeoutMs`. */
export async function until(cond: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
