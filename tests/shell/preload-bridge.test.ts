/**
 * `window.messenger` as the preload builds it (`src-preload/bridge.ts`), over a fake IPC port that
 * behaves like `ipcRenderer`: what the page can call, what it gets back, and what it never sees.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';

import { createMessengerBridge, type BridgePort } from '../../src-preload/bridge.js';
import {
  API_METHODS,
  IPC_CALL,
  IPC_EVENT,
  type CallResult,
  type MessengerEvent,
} from '../../src-main/shared/messenger-api.js';

/** An `ipcRenderer` stand-in: `invoke` answers with `reply`, `emit` delivers like the main process. */
class FakeIpc extends EventEmitter implements BridgePort {
  readonly calls: unknown[][] = [];
  reply: (method: string, args: unknown) => unknown = () => ({ ok: true, value: undefined });

  async invoke(channel: string, ...args: unknown[]): Promise<unknown> {
    this.calls.push([channel, ...args]);
    return this.reply(String(args[0]), args[1]);
  }

  /** Sends an event as main does: Electron passes its IpcRendererEvent first. */
  deliver(event: MessengerEvent): void {
    this.emit(IPC_EVENT, { sender: 'the ipcRenderer itself', ports: [] }, event);
  }
}

describe('preload bridge', () => {
  it('exposes exactly the API methods and onEvent, frozen, and nothing of ipcRenderer', () => {
    const api = createMessengerBridge(new FakeIpc());
    expect(Object.keys(api).sort()).toEqual([...API_METHODS, 'onEvent'].sort());
    expect(Object.isFrozen(api)).toBe(true);
    for (const value of Object.values(api)) expect(typeof value).toBe('function');
    for (const name of ['invoke', 'on', 'send', 'sendSync', 'removeListener', 'ipcRenderer']) {
      expect(api).not.toHaveProperty(name);
    }
  });

  it('forwards every method on the call channel with its name and arguments', async () => {
    const ipc = new FakeIpc();
    const api = createMessengerBridge(ipc);
    await api.getStatus();
    await api.sendDirect({ to: 'bob', text: 'hi' });
    expect(ipc.calls).toEqual([
      [IPC_CALL, 'getStatus', undefined],
      [IPC_CALL, 'sendDirect', { to: 'bob', text: 'hi' }],
    ]);
    for (const method of API_METHODS) {
      await (api[method] as (args?: unknown) => Promise<unknown>)({ probe: method });
    }
    expect(ipc.calls.slice(2).map((call) => call[1])).toEqual([...API_METHODS]);
  });

  it('resolves with the value of a successful call', async () => {
    const ipc = new FakeIpc();
    const settings = { notifications: 'sender', theme: 'dark', relayPort: 8787 } as const;
    ipc.reply = (method) => ({ ok: true, value: method === 'getSettings' ? settings : null });
    const api = createMessengerBridge(ipc);
    await expect(api.getSettings()).resolves.toEqual(settings);
  });

  it('rejects a failed call with an Error whose message is the plain sentence', async () => {
    const ipc = new FakeIpc();
    const failure: CallResult = {
      ok: false,
      error: { code: 'NOT_CONNECTED', message: 'You are not connected to a relay.' },
    };
    ipc.reply = () => failure;
    const api = createMessengerBridge(ipc);
    const error: unknown = await api.sendDirect({ to: 'bob', text: 'hi' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe('You are not connected to a relay.');
    // Present in the preload; contextBridge keeps only `message` on its way to the page.
    expect((error as { code?: string }).code).toBe('NOT_CONNECTED');
  });

  it('turns a reply that is not a CallResult into an error, never into a value', async () => {
    for (const reply of [undefined, null, 42, 'ok', {}, { ok: 'yes', value: 1 }, { ok: false, error: 'x' }]) {
      const ipc = new FakeIpc();
      ipc.reply = () => reply;
      const api = createMessengerBridge(ipc);
      await expect(api.getStatus(), JSON.stringify(reply)).rejects.toThrow(/unreadable reply/);
    }
  });

  it('delivers events without the IpcRendererEvent, and stops after unsubscribe', () => {
    const ipc = new FakeIpc();
    const api = createMessengerBridge(ipc);
    const received: unknown[][] = [];
    const unsubscribe = api.onEvent((...args: unknown[]) => received.push(args));
    const event: MessengerEvent = { type: 'error', message: 'The relay closed the connection.' };
    ipc.deliver(event);
    expect(received).toEqual([[event]]);

    unsubscribe();
    unsubscribe();
    ipc.deliver(event);
    expect(received).toHaveLength(1);
    expect(ipc.listenerCount(IPC_EVENT)).toBe(0);
  });

  it('keeps separate subscriptions apart', () => {
    const ipc = new FakeIpc();
    const api = createMessengerBridge(ipc);
    const a: MessengerEvent[] = [];
    const b: MessengerEvent[] = [];
    const offA = api.onEvent((event) => a.push(event));
    api.onEvent((event) => b.push(event));
    offA();
    ipc.deliver({ type: 'connection', state: 'connected' });
    expect(a).toEqual([]);
    expect(b).toEqual([{ type: 'connection', state: 'connected' }]);
  });

  it('refuses a listener that is not a function', () => {
    const api = createMessengerBridge(new FakeIpc());
    expect(() => api.onEvent('alert(1)' as unknown as () => void)).toThrow(TypeError);
  });
});
