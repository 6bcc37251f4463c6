/**
 * A WebSocket man-in-the-middle between clients and the relay, for tests: it records every frame and
 * lets a test rewrite, drop, replay or inject frames (a malicious or curious relay operator).
 */
import { WebSocketServer, WebSocket } from 'ws';
import type { AddressInfo } from 'node:net';

export interface ProxiedConnection {
  /** userId once the client's hello has passed through. */
  userId: string | undefined;
  toClient(frame: string): void;
  toRelay(frame: string): void;
}

export interface ProxyHooks {
  /** Return the frame to forward (possibly rewritten) or null to drop it. */
  fromClient?: (frame: string, conn: ProxiedConnection) => string | null;
  fromRelay?: (frame: string, conn: ProxiedConnection) => string | null;
}

export interface Proxy {
  url: string;
  /** Where new connections are forwarded (change it to put another relay behind the same address). */
  upstream: string;
  /** Every frame clients sent, as forwarded to the relay. */
  clientFrames: string[];
  /** Every frame the relay sent. */
  relayFrames: string[];
  connections: ProxiedConnection[];
  hooks: ProxyHooks;
  close(): Promise<void>;
}

/** Starts a proxy on 127.0.0.1 (port 0) in front of `relayUrl`. */
export async function startProxy(relayUrl: string, hooks: ProxyHooks = {}): Promise<Proxy> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const proxy: Proxy = {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    upstream: relayUrl,
    clientFrames: [],
    relayFrames: [],
    connections: [],
    hooks,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
  wss.on('connection', (client) => {
    const upstream = new WebSocket(proxy.upstream, { perMessageDeflate: false });
    const early: string[] = [];
    const conn: ProxiedConnection = {
      userId: undefined,
      toClient: (f) => client.readyState === WebSocket.OPEN && client.send(f),
      toRelay: (f) => (upstream.readyState === WebSocket.OPEN ? upstream.send(f) : early.push(f)),
    };
    proxy.connections.push(conn);
    upstream.on('open', () => {
      for (const f of early.splice(0)) upstream.send(f);
    });
    client.on('message', (data) => {
      let f: string | null = data.toString();
      try {
        const j = JSON.parse(f) as { t?: string; userId?: string };
        if (j.t === 'hello') conn.userId = j.userId;
      } catch {
        // not JSON: forward as is
      }
      f = proxy.hooks.fromClient ? proxy.hooks.fromClient(f, conn) : f;
      if (f === null) return;
      proxy.clientFrames.push(f);
      conn.toRelay(f);
    });
    upstream.on('message', (data) => {
      let f: string | null = data.toString();
      proxy.relayFrames.push(f);
      f = proxy.hooks.fromRelay ? proxy.hooks.fromRelay(f, conn) : f;
      if (f !== null) conn.toClient(f);
    });
    client.on('close', () => upstream.close());
    upstream.on('close', (code, reason) => {
      if (client.readyState !== WebSocket.OPEN) return;
      // 1005 (no code) and 1006 (the relay vanished) cannot be sent: pass a vanished relay on as a drop.
      if (code === 1006) client.terminate();
      else client.close(code === 1005 ? 1000 : code, reason);
    });
    client.on('error', () => upstream.terminate());
    upstream.on('error', () => client.terminate());
  });
  return proxy;
}
