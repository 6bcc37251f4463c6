/**
 * Self-signed certificates for TLS tests, made when the test runs with the openssl command (Debian's
 * `openssl` package; node:crypto makes keys but not X.509 certificates). Nothing is committed: each
 * key lives in a temporary folder the test removes.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** A certificate and its key, as files and as PEM text. */
export interface TestCertificate {
  readonly certFile: string;
  readonly keyFile: string;
  /** The certificate, PEM: what a client that trusts it passes as `tls.ca`. */
  readonly certPem: string;
}

/**
 * Writes `<name>.crt` and `<name>.key` in `dir`: a P-256 key and a certificate for 127.0.0.1 and
 * localhost, valid for a day.
 */
export function selfSigned(dir: string, name: string): TestCertificate {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return { certFile, keyFile, certPem: readFileSync(certFile, 'utf8') };
}
