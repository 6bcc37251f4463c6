/**
 * The page half of the browser test bridge: defines `window.messenger` in the test page the way the
 * Electron preload does, with the preload's own builder (src-preload/bridge.ts), so the renderer gets
 * the same object; only the port under it differs: calls and events travel over a WebSocket to
 * bridge-server.ts instead of Electron's IPC. Bundled with esbuild and injected with Playwright's
 * `addInitScript`, so it runs before the app's scripts. Never part of the app.
 *
 * Compiled under the repository's Node-only tsconfig (no DOM types): the few browser APIs it uses are
 * declared below.
 */
import { createMessengerBridge, type BridgePort } from '../../src-preload/bridge.js';
import { IPC_CALL, IPC_EVENT, type CallResult } from '../../src-main/shared/messenger-api.js';

/** The part of the browser's WebSocket used here. */
interface PageSocket {
  readonly readyState: number;
  send(data: string): void;
  addEventListener(type: 'open' | 'close', listener: () => void): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
}

type Listener = (event: unknown, ...args: unknown[]) => void;

const OPEN = 1;

/** What a call gets when the main process went away (the app would have quit with it). */
const GONE: CallResult<never> = {
  ok: false,
  error: {
    code: 'BRIDGE_CLOSED',
    message: 'Sealed lost its connection to the main process. Restart Sealed.',
  },
};

/** Opens the socket to `url` and defines `window.messenger` over it; calls made before it opens wait. */
export function installBridge(url: string): void {
  const g = globalThis as unknown as { WebSocket: new (url: string) => PageSocket };
  const socket = new g.WebSocket(url);
  const waiting: string[] = [];
  const pending = new Map<number, (result: unknown) => void>();
  const listeners = new Set<Listener>();
  let nextId = 1;
  let closed = false;

  socket.addEventListener('open', () => {
    for (const frame of waiting.splice(0)) socket.send(frame);
  });
  socket.addEventListener('close', () => {
    closed = true;
    waiting.length = 0;
    for (const resolve of pending.values()) resolve(GONE);
    pending.clear();
  });
  socket.addEventListener('message', ({ data }) => {
    if (typeof data !== 'string') return;
    const message = JSON.parse(data) as { id?: number; result?: unknown; event?: unknown };
    if (typeof message.id === 'number') {
      const resolve = pending.get(message.id);
      pending.delete(message.id);
      let result = message.result;
      // JSON drops `value: undefined` (a void method's result); Electron's structured clone keeps it.
      if (typeof result === 'object' && result !== null && 'ok' in result && result.ok === true) {
        if (!('value' in result)) result = { ...result, value: undefined };
      }
      resolve?.(result);
    } else if ('event' in message) {
      for (const listener of [...listeners]) listener(undefined, message.event);
    }
  });

  const port: BridgePort = {
    invoke(channel, method, args) {
      if (channel !== IPC_CALL) return Promise.reject(new Error(`unknown channel ${channel}`));
      if (closed) return Promise.resolve(GONE);
      return new Promise((resolve) => {
        const id = nextId++;
        pending.set(id, resolve);
        const frame = JSON.stringify({ id, method, args });
        if (socket.readyState === OPEN) socket.send(frame);
        else waiting.push(frame);
      });
    },
    on(channel, listener) {
      if (channel === IPC_EVENT) listeners.add(listener);
    },
    removeListener(channel, listener) {
      if (channel === IPC_EVENT) listeners.delete(listener);
    },
  };

  // Like contextBridge.exposeInMainWorld: a read-only property holding the frozen API object.
  Object.defineProperty(globalThis, 'messenger', {
    value: createMessengerBridge(port),
    enumerable: true,
    writable: false,
    configurable: false,
  });
}
