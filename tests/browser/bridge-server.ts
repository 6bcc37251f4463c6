/**
 * The main-process half of the browser test bridge: a loopback WebSocket server that stands in for
 * Electron's IPC. The Electron shell forwards `ipcMain.handle(IPC_CALL)` to `createIpcDispatcher`
 * and `service.subscribe` to `webContents.send(IPC_EVENT)`; this server does the same over a socket,
 * with the same dispatcher (sender check, method list, argument schemas) in front of the same
 * MessengerService. The page half is bridge-client.ts.
 *
 * Protocol (JSON text frames): a page connects to ws://127.0.0.1:PORT/?profile=NAME; each profile
 * has one MessengerService (started by `startService` when a page first asks for it, shared by every
 * page of that profile). The page sends `{ id, method, args }` and gets `{ id, result }` (a
 * CallResult); every service event arrives as `{ event }`.
 *
 * The sender URL given to the dispatcher is the socket's Origin header plus "/": it is set by the
 * browser, not by the page's script, like Electron's `senderFrame.url`. A connection from an origin
 * `isTrustedSender` refuses is rejected at the handshake (403), and each call is checked again.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

import { createIpcDispatcher, type IpcDispatcher } from '../../src-main/services/ipc.js';
import type { MessengerService } from '../../src-main/services/messenger-service.js';
import type { CallResult } from '../../src-main/shared/messenger-api.js';

/** What the bridge needs from the test. */
export interface BridgeServerOptions {
  /** Creates and starts the service of a profile (called when a page asks for a profile not running). */
  startService(profile: string): Promise<MessengerService>;
  /** The dispatcher's sender check: true for the test page's URL. */
  isTrustedSender(url: string): boolean;
  /** Unexpected errors inside the service (their text never reaches the page). */
  onInternalError?: ((method: string, error: unknown) => void) | undefined;
}

export interface BridgeServer {
  readonly port: number;
  /** What a page of `profile` connects to. */
  urlFor(profile: string): string;
  /** The running service of a profile, if any. */
  service(profile: string): MessengerService | undefined;
  /**
   * Closes the profile's sockets and its service (like quitting the app); the next page of that
   * profile starts a new service through `startService`.
   */
  stop(profile: string): Promise<void>;
  /** Closes every socket and service, then the server. */
  close(): Promise<void>;
}

/** Profile names: the service's own rule for them (wire Name). */
const PROFILE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The reply when the service of a profile could not be started. */
const START_FAILED: CallResult<never> = {
  ok: false,
  error: { code: 'INTERNAL', message: 'Sealed could not start. Restart Sealed.' },
};

interface Hosted {
  /** Resolves to the started service and its dispatcher. */
  ready: Promise<{ service: MessengerService; dispatch: IpcDispatcher }>;
  service: MessengerService | undefined;
  sockets: Set<WebSocket>;
}

/** Starts the bridge on 127.0.0.1 with a free port. */
export async function startBridgeServer(options: BridgeServerOptions): Promise<BridgeServer> {
  const hosted = new Map<string, Hosted>();
  let closing = false;

  const originOf = (req: IncomingMessage): string | undefined => {
    const origin = req.headers.origin;
    return typeof origin === 'string' && origin !== 'null' ? `${origin}/` : undefined;
  };
  const profileOf = (req: IncomingMessage): string | undefined => {
    const profile = new URL(req.url ?? '/', 'ws://127.0.0.1').searchParams.get('profile');
    return profile !== null && PROFILE.test(profile) ? profile : undefined;
  };

  /** The profile's running service, or a new one starting. */
  const host = (profile: string): Hosted => {
    const running = hosted.get(profile);
    if (running) return running;
    const entry: Hosted = {
      service: undefined,
      sockets: new Set(),
      ready: options.startService(profile).then((service) => {
        entry.service = service;
        const dispatch = createIpcDispatcher(service, {
          isTrustedSender: options.isTrustedSender,
          onInternalError: options.onInternalError,
        });
        return { service, dispatch };
      }),
    };
    entry.ready.catch((error: unknown) => options.onInternalError?.('startService', error));
    hosted.set(profile, entry);
    return entry;
  };

  const server = createServer((_req, res) => {
    res
      .writeHead(426, { 'content-type': 'text/plain' })
      .end('Sealed test bridge: connect with a WebSocket.\n');
  });
  const wss = new WebSocketServer({
    server,
    perMessageDeflate: false,
    maxPayload: 1024 * 1024,
    verifyClient: ({ req }, done) => {
      const sender = originOf(req);
      if (closing || !sender || !options.isTrustedSender(sender) || !profileOf(req)) done(false, 403);
      else done(true);
    },
  });

  wss.on('connection', (ws, req) => {
    const sender = originOf(req)!;
    const h = host(profileOf(req)!);
    h.sockets.add(ws);
    let unsubscribe: (() => void) | undefined;
    let gone = false;
    ws.on('close', () => {
      gone = true;
      h.sockets.delete(ws);
      unsubscribe?.();
    });
    ws.on('error', () => undefined);
    const send = (message: unknown): void => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
    };

    // Events go to this page from the moment the service runs (like webContents.send in the shell).
    h.ready.then(
      ({ service }) => {
        if (!gone) unsubscribe = service.subscribe((event) => send({ event }));
      },
      () => undefined,
    );

    ws.on('message', (data, isBinary) => {
      let call: { id?: unknown; method?: unknown; args?: unknown };
      try {
        if (isBinary) throw new Error('binary frame');
        call = JSON.parse(data.toString()) as typeof call;
      } catch {
        ws.close(1003, 'not a JSON call');
        return;
      }
      if (typeof call !== 'object' || call === null || typeof call.id !== 'number') {
        ws.close(1003, 'a call needs a numeric id');
        return;
      }
      const { id, method, args } = call;
      h.ready.then(
        async ({ dispatch }) => send({ id, result: await dispatch(sender, method, args) }),
        () => send({ id, result: START_FAILED }),
      );
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  /** Closes a profile's sockets (the pages see the main process go away), then its service. */
  const stopHosted = async (h: Hosted): Promise<void> => {
    const closed = [...h.sockets].map(
      (ws) =>
        new Promise<void>((resolve) => {
          if (ws.readyState === ws.CLOSED) return resolve();
          ws.once('close', () => resolve());
          ws.close(1001, 'service stopped');
          setTimeout(() => ws.terminate(), 1000).unref();
        }),
    );
    await Promise.all(closed);
    const started = await h.ready.catch(() => undefined);
    await started?.service.close();
  };

  return {
    port,
    urlFor: (profile) => `ws://127.0.0.1:${port}/?profile=${encodeURIComponent(profile)}`,
    service: (profile) => hosted.get(profile)?.service,
    async stop(profile) {
      const h = hosted.get(profile);
      if (!h) return;
      hosted.delete(profile);
      await stopHosted(h);
    },
    async close() {
      closing = true;
      const all = [...hosted.values()];
      hosted.clear();
      await Promise.all(all.map(stopHosted));
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
