/**
 * The relay's plain HTTP requests (everything that is not a WebSocket upgrade), on its own port and
 * over TLS when it serves wss://:
 *
 * - `GET /healthz`: the health report as JSON, 200 while the relay can serve, 503 otherwise (health.ts).
 *   Public: it says nothing a client could not learn by connecting.
 * - `GET /metrics`: Prometheus text (metrics.ts), to whom the `metrics` option allows. `'loopback'`
 *   answers requests from 127.0.0.0/8 or ::1 that carry no proxy header (`Forwarded`,
 *   `X-Forwarded-For`, `X-Real-IP`): a reverse proxy on the same computer connects from loopback too, and
 *   would otherwise hand the metrics to the internet (docs/OPERATIONS.md, Reverse proxy).
 * - anything else: 426 and one line saying this is a Sealed relay.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import ipaddr from 'ipaddr.js';
import type { Health } from './health.js';
import type { RelayMetrics } from './metrics.js';
import type { MetricsAccess } from './options.js';

const PROXY_HEADERS = ['forwarded', 'x-forwarded-for', 'x-real-ip'];

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (a dual-stack socket's view of 127.0.0.1). */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined || !ipaddr.isValid(address)) return false;
  return ipaddr.process(address).range() === 'loopback';
}

/** The request listener of the relay's HTTP(S) server. */
export function httpHandler(
  health: Health,
  metrics: RelayMetrics | undefined,
  access: MetricsAccess,
  onError: (err: unknown) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' || path === '/metrics') {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        reply(res, 405, 'text/plain; charset=utf-8', `${path} answers GET and HEAD only.\n`, {
          allow: 'GET, HEAD',
        });
        return;
      }
      if (path === '/healthz') {
        const report = health.report();
        reply(res, report.status === 'ok' ? 200 : 503, 'application/json', `${JSON.stringify(report)}\n`);
        return;
      }
      const refusal = metricsRefusal(req, metrics, access);
      if (refusal) {
        reply(res, refusal.status, 'text/plain; charset=utf-8', `${refusal.text}\n`);
        return;
      }
      metrics!.render().then(
        ({ contentType, body }) => reply(res, 200, contentType, body),
        (err: unknown) => {
          onError(err);
          reply(res, 500, 'text/plain; charset=utf-8', 'The metrics could not be collected.\n');
        },
      );
      return;
    }
    reply(res, 426, 'text/plain', 'This is a Sealed relay: connect with a WebSocket.\n');
  };
}

function metricsRefusal(
  req: IncomingMessage,
  metrics: RelayMetrics | undefined,
  access: MetricsAccess,
): { status: number; text: string } | undefined {
  if (!metrics || access === false) return { status: 404, text: 'This relay does not serve metrics.' };
  if (access === 'open') return undefined;
  if (!isLoopback(req.socket.remoteAddress))
    return { status: 403, text: 'Metrics are served to this computer only (127.0.0.1, ::1).' };
  if (PROXY_HEADERS.some((h) => req.headers[h] !== undefined))
    return {
      status: 403,
      text: 'Metrics are not served through a proxy: scrape the relay itself on 127.0.0.1.',
    };
  return undefined;
}

function reply(
  res: ServerResponse,
  status: number,
  contentType: string,
  body: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
