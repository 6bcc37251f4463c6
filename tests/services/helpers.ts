/** Helpers for the main-process service tests: temp dirs, a per-test keychain service, event recording. */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { MessengerEvent } from '../../src-main/shared/messenger-api.js';
import { MessengerService, type MessengerServiceDeps } from '../../src-main/services/messenger-service.js';
import { Secrets, keytarBackend, type KeychainBackend } from '../../src-main/services/secrets.js';

/** A fresh directory, removed by the returned cleanup. */
export function tempDir(prefix = 'sealed-svc-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * The real keychain (keytar against the Secret Service of the dbus-run-session) under a service
 * name of its own, so parallel test files never share an entry; `cleanup` deletes what it stored.
 */
export function testKeychain(): {
  service: string;
  backend: KeychainBackend;
  secrets: () => Secrets;
  cleanup: () => Promise<void>;
} {
  const service = `Sealed-test-${randomUUID()}`;
  const real = keytarBackend();
  const accounts = new Set<string>();
  const backend: KeychainBackend = {
    getPassword: (s, a) => real.getPassword(s, a),
    setPassword: async (s, a, p) => {
      accounts.add(a);
      await real.setPassword(s, a, p);
    },
    deletePassword: (s, a) => real.deletePassword(s, a),
  };
  return {
    service,
    backend,
    // scrypt at its floor (2^15) keeps key-file tests quick; the default (2^17) has its own test.
    secrets: () => new Secrets({ keychain: backend, service, scryptN: 2 ** 15 }),
    cleanup: async () => {
      for (const a of accounts) await real.deletePassword(service, a).catch(() => false);
    },
  };
}

/** Records a service's events and waits for one. */
export class Events {
  readonly all: MessengerEvent[] = [];
  private waiters: { pred: (e: MessengerEvent) => boolean; resolve: (e: MessengerEvent) => void }[] = [];
  readonly unsubscribe: () => void;

  constructor(service: MessengerService) {
    this.unsubscribe = service.subscribe((e) => {
      this.all.push(e);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(e)) return true;
        w.resolve(e);
        return false;
      });
    });
  }

  /** The first past or future event matching `pred`. */
  wait<T extends MessengerEvent>(pred: (e: MessengerEvent) => e is T, timeoutMs?: number): Promise<T>;
  wait(pred: (e: MessengerEvent) => boolean, timeoutMs?: number): Promise<MessengerEvent>;
  wait(pred: (e: MessengerEvent) => boolean, timeoutMs = 10_000): Promise<MessengerEvent> {
    const past = this.all.find(pred);
    if (past) return Promise.resolve(past);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out waiting for an event')), timeoutMs);
      this.waiters.push({
        pred,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }

  /** Waits for an item event whose text matches, in a conversation. */
  item(
    conversationId: string,
    text: string | RegExp,
    timeoutMs?: number,
  ): Promise<Extract<MessengerEvent, { type: 'item' }>> {
    return this.wait(
      (e): e is Extract<MessengerEvent, { type: 'item' }> =>
        e.type === 'item' &&
        e.item.conversationId === conversationId &&
        (typeof text === 'string' ? e.item.text === text : text.test(e.item.text)),
      timeoutMs,
    );
  }
}

/** A started service on `dataDir` with fast reconnects and no LAN discovery unless given. */
export async function startService(
  deps: Partial<MessengerServiceDeps> & { dataDir: string; secrets: Secrets },
): Promise<MessengerService> {
  const service = new MessengerService({
    discovery: null,
    clientOptions: { reconnectDelayMs: { min: 20, max: 200 } },
    ...deps,
  });
  await service.start();
  return service;
}

/** Polls `fn` until it returns a truthy value. */
export async function until<T>(fn: () => T | Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
