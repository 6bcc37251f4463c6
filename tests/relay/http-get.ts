/** Plain HTTP(S) requests to a relay's health and metrics endpoints, as an operator's tools make them. */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** The http(s):// address of `path` on the relay at `relayUrl` (ws:// or wss://). */
export function relayHttpUrl(relayUrl: string, path: string): string {
  return `${relayUrl.replace(/^ws/, 'http')}${path}`;
}

/** One request; `ca` is the certificate to trust for https. */
export function get(
  url: string,
  options: { ca?: string; headers?: Record<string, string>; method?: string } = {},
): Promise<HttpAnswer> {
  const request = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: options.method ?? 'GET', headers: options.headers, ca: options.ca, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/**
 * The samples of a Prometheus text exposition, keyed as printed: `name` or `name{label="value",…}`.
 * Comment lines (# HELP, # TYPE) are left out.
 */
export function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** Scrapes `/metrics` of the relay at `relayUrl` and returns its samples (throws unless 200). */
export async function scrape(relayUrl: string, ca?: string): Promise<Map<string, number>> {
  const answer = await get(relayHttpUrl(relayUrl, '/metrics'), ca === undefined ? {} : { ca });
  if (answer.status !== 200) throw new Error(`/metrics answered ${answer.status}: ${answer.body}`);
  return samples(answer.body);
}
