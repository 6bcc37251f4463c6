/**
 * `window.messenger` built over an IPC port: no `electron` import here, so Node tests can drive it with a
 * fake port; `index.ts` passes the real `ipcRenderer` and exposes the result through `contextBridge`.
 *
 * Errors: the main process answers every call with a `CallResult`, so a failure arrives as data. It is
 * rethrown as an `Error` whose message is the plain sentence, with the stable code as `code`. Note that
 * `contextBridge` rebuilds a rejected Error in the page's world from its `message` alone
 * (electron/electron shell/renderer/api/electron_api_context_bridge.cc, `IsNativeError`): the renderer
 * gets an `Error` with the right sentence, and `code` does not survive the bridge. We keep the message a
 * clean sentence (it is shown to the user) rather than prefixing the code into it; the renderer learns
 * states such as "locked" from `getStatus` and events, not from error codes.
 */
import {
  API_METHODS,
  IPC_CALL,
  IPC_EVENT,
  type ApiMethod,
  type MessengerApi,
  type MessengerEvent,
} from '../src-main/shared/messenger-api.js';

/** The part of `ipcRenderer` the bridge uses. */
export interface BridgePort {
  invoke(channel: string, ...args: unknown[]): Promise<unknown>;
  on(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
  removeListener(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
}

/** A failed call as the preload throws it; across `contextBridge` only `message` reaches the page. */
export class MessengerCallError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = 'MessengerCallError';
    this.code = code;
  }
}

const MALFORMED_REPLY = 'The app sent an unreadable reply. Try again, or restart Sealed.';

/** The value of a `CallResult`, or its error thrown; anything that is not a `CallResult` is an error too. */
function unwrap(result: unknown): unknown {
  if (typeof result === 'object' && result !== null && 'ok' in result) {
    if (result.ok === true && 'value' in result) return result.value;
    if (result.ok === false && 'error' in result) {
      const error = result.error;
      if (typeof error === 'object' && error !== null && 'code' in error && 'message' in error) {
        const { code, message } = error;
        if (typeof code === 'string' && typeof message === 'string') {
          throw new MessengerCallError(code, message);
        }
      }
    }
  }
  throw new MessengerCallError('MALFORMED_REPLY', MALFORMED_REPLY);
}

/** Every request/response method of `MessengerApi` is in API_METHODS: a method missing there fails to compile. */
type Unlisted = Exclude<keyof MessengerApi, ApiMethod | 'onEvent'>;
const _everyMethodListed: [Unlisted] extends [never] ? true : Unlisted = true;

/** Builds the frozen `window.messenger` object: one forwarding function per API method, plus `onEvent`. */
export function createMessengerBridge(port: BridgePort): MessengerApi {
  const api: Record<string, unknown> = {};
  for (const method of API_METHODS) {
    api[method] = async (args?: unknown): Promise<unknown> =>
      unwrap(await port.invoke(IPC_CALL, method, args));
  }
  api['onEvent'] = (listener: (event: MessengerEvent) => void): (() => void) => {
    if (typeof listener !== 'function') throw new TypeError('onEvent expects a function.');
    // The renderer gets the event payload only, never Electron's IpcRendererEvent (it holds `sender`).
    const forward = (_event: unknown, payload: unknown): void => listener(payload as MessengerEvent);
    port.on(IPC_EVENT, forward);
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      port.removeListener(IPC_EVENT, forward);
    };
  };
  // The IPC payloads are validated by the main process; this object only forwards them.
  return Object.freeze(api) as unknown as MessengerApi;
}
