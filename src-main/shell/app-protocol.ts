/**
 * Electron adapter: the `app://sealed/` scheme that serves the built renderer. Which URLs map to which
 * files, and with which headers, is decided by the pure functions in `security-policy.ts`; this file only
 * registers the scheme and reads the files.
 */
import { protocol, type Session } from 'electron';
import { readFile, realpath } from 'node:fs/promises';

import {
  APP_SCHEME,
  appResponseHeaders,
  appSchemePrivileges,
  isInside,
  resolveAppFile,
} from '../security-policy.js';

/** Registers `app:` as a standard, secure scheme; Electron allows this only before the app is ready. */
export function registerAppScheme(): void {
  protocol.registerSchemesAsPrivileged([{ scheme: APP_SCHEME, privileges: appSchemePrivileges }]);
}

function plainResponse(status: number, text: string): Response {
  return new Response(text, {
    status,
    headers: { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' },
  });
}

/** Serves `rendererRoot` (the built renderer) on `app://sealed/` for `session`: GET/HEAD of known files only. */
export function serveRenderer(session: Session, rendererRoot: string): void {
  session.protocol.handle(APP_SCHEME, async (request) => {
    if (request.method !== 'GET' && request.method !== 'HEAD')
      return plainResponse(405, 'Method not allowed');
    const file = resolveAppFile(request.url, rendererRoot);
    if (!file) return plainResponse(404, 'Not found');
    try {
      // A symbolic link inside the renderer folder must not lead out of it either.
      const [realRoot, realFile] = await Promise.all([realpath(rendererRoot), realpath(file)]);
      if (!isInside(realRoot, realFile)) return plainResponse(404, 'Not found');
      const body = await readFile(realFile);
      return new Response(request.method === 'HEAD' ? null : new Uint8Array(body), {
        headers: appResponseHeaders(file),
      });
    } catch {
      return plainResponse(404, 'Not found');
    }
  });
}
