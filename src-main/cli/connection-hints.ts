/**
 * Connection failures in words: what went wrong and what to check, instead of EPROTO or ENOTFOUND.
 * Each failure also has a kind, so the chat says it once and stays quiet while retries fail the
 * same way (issue 7).
 */
import { RelayError } from '../core/errors.js';

/** A connection failure explained: `kind` groups repeats, `text` is one sentence for the user. */
export interface ConnectionHint {
  readonly kind: string;
  readonly text: string;
}

const DNS = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_FAIL']);
const UNREACHABLE = new Set(['ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN']);
const CLOSED_EARLY = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);
// Node's TLS verification codes (tls.connect: err.code) for a certificate that is not trusted.
const CERTIFICATE =
  /CERT|SELF_SIGNED|UNABLE_TO_(GET_ISSUER|VERIFY)|ERR_TLS_CERT_ALTNAME_INVALID|HOSTNAME_MISMATCH/;

/** Explains why connecting to the relay at `url` failed with `error`. */
export function connectionHint(url: string, error: Error): ConnectionHint {
  const u = new URL(url);
  const port = u.port || (u.protocol === 'wss:' ? '443' : '80');
  const where = `${u.hostname}:${port}`;
  const code = (error as { code?: unknown }).code;
  const tls = u.protocol === 'wss:';

  if (error instanceof RelayError) {
    return { kind: `relay:${error.relayCode}`, text: `The relay refused the connection: ${error.message}` };
  }
  if (typeof code === 'string') {
    if (DNS.has(code))
      return {
        kind: 'dns',
        text: `Cannot find the host "${u.hostname}" (${code}): check the address in --relay, and that this computer is online.`,
      };
    if (code === 'ECONNREFUSED')
      return {
        kind: 'refused',
        text: `Nothing is listening at ${where}: check that the relay is running (npm run relay) and that the port in --relay is right.`,
      };
    if (UNREACHABLE.has(code))
      return {
        kind: 'unreachable',
        text: `Cannot reach ${where} (${code}): check the network, a firewall, and the address in --relay.`,
      };
    if (code === 'EPROTO' || code.startsWith('ERR_SSL'))
      return {
        kind: 'tls',
        text: tls
          ? `The TLS handshake with ${where} failed: the server there does not speak TLS (npm run relay speaks it only with --tls-cert and --tls-key), so use ws:// instead of wss://.`
          : `The server at ${where} answered with something that is not a WebSocket: check the address and port in --relay.`,
      };
    if (CERTIFICATE.test(code))
      return {
        kind: 'certificate',
        text: `The TLS certificate of ${where} is not trusted (${code}): check the address in --relay, and that the relay's certificate is valid for ${u.hostname}; a certificate of your own is trusted with NODE_EXTRA_CA_CERTS=<its PEM file>.`,
      };
    if (CLOSED_EARLY.has(code))
      return {
        kind: 'closed',
        text: `${where} closed the connection before the relay answered: check that it is a Sealed relay${
          tls ? '' : ', and use wss:// if it expects TLS'
        }.`,
      };
  }
  // ws: "Unexpected server response: 404" when an HTTP server does not upgrade the connection.
  const status = /Unexpected server response: (\d+)/.exec(error.message)?.[1];
  if (status)
    return {
      kind: `http:${status}`,
      text: `${where} is a web server but not a Sealed relay (it answered HTTP ${status}): check the address and port in --relay.`,
    };
  return {
    kind: `other:${typeof code === 'string' ? code : error.message}`,
    text: `Cannot connect to ${url}: ${error.message.replace(/\.$/, '')}.`,
  };
}
