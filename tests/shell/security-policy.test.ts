/**
 * The Electron shell's security policy, asserted as the plain data and pure functions the shell applies
 * (`src-main/security-policy.ts`); Electron itself never loads here.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import {
  APP_ENTRY_URL,
  APP_ORIGIN,
  APP_ROOT_URL,
  appResponseHeaders,
  appSchemePrivileges,
  CONTENT_SECURITY_POLICY,
  META_CONTENT_SECURITY_POLICY,
  contentTypeFor,
  devContentSecurityPolicy,
  isNavigationAllowed,
  permissionCheckHandler,
  permissionRequestHandler,
  resolveAppFile,
  UNTRUSTED_SENDER_RESULT,
  webPreferences,
  windowOpenHandler,
  windowOptions,
} from '../../src-main/security-policy.js';
import { createIpcDispatcher, isAppUrl } from '../../src-main/services/ipc.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Directive name → its source list, e.g. `script-src` → ["'self'"]. */
function parseCsp(policy: string): Map<string, string[]> {
  const directives = new Map<string, string[]>();
  for (const part of policy.split(';')) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (!name) continue;
    expect(directives.has(name), `duplicate directive ${name}`).toBe(false);
    directives.set(name, sources);
  }
  return directives;
}

describe('window options', () => {
  it('sandboxes the renderer and isolates it from Node and Electron', () => {
    expect(webPreferences).toEqual({
      sandbox: true,
      contextIsolation: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      experimentalFeatures: false,
      webviewTag: false,
      navigateOnDragDrop: false,
      safeDialogs: true,
      spellcheck: false,
    });
    expect(windowOptions.webPreferences).toBe(webPreferences);
  });

  it('cannot be loosened at run time', () => {
    expect(Object.isFrozen(webPreferences)).toBe(true);
    expect(Object.isFrozen(windowOptions)).toBe(true);
  });

  it('names no preload and no partition here (window.ts adds the bundled preload path only)', () => {
    expect(webPreferences).not.toHaveProperty('preload');
    expect(webPreferences).not.toHaveProperty('partition');
    expect(windowOptions.show).toBe(false);
  });
});

describe('content security policy', () => {
  const csp = parseCsp(CONTENT_SECURITY_POLICY);

  it('denies by default and allows scripts from the app only', () => {
    expect(csp.get('default-src')).toEqual(["'none'"]);
    expect(csp.get('script-src')).toEqual(["'self'"]);
    expect(csp.get('connect-src')).toEqual(["'none'"]);
    expect(csp.get('object-src') ?? csp.get('default-src')).toEqual(["'none'"]);
    expect(csp.get('base-uri')).toEqual(["'none'"]);
    expect(csp.get('form-action')).toEqual(["'none'"]);
    expect(csp.get('frame-ancestors')).toEqual(["'none'"]);
  });

  it('has no unsafe keyword and no remote host anywhere', () => {
    for (const [name, sources] of csp) {
      for (const source of sources) {
        expect(source, name).not.toMatch(/unsafe|\*|https?:|wss?:|\/\//);
        expect(['self', 'none', 'data:']).toContain(source.replaceAll("'", ''));
      }
    }
    expect(csp.get('img-src')).toEqual(["'self'", 'data:']);
  });

  it('is the meta tag of src-renderer/index.html, character for character, less frame-ancestors', () => {
    const html = readFileSync(join(ROOT, 'src-renderer/index.html'), 'utf8');
    const metas = [...html.matchAll(/<meta\s+http-equiv="Content-Security-Policy"\s+content="([^"]*)"/gi)];
    expect(metas).toHaveLength(1);
    expect(metas[0]?.[1]).toBe(META_CONTENT_SECURITY_POLICY);
    // The header keeps frame-ancestors (ignored in a meta tag); everything else is the same.
    expect(`${META_CONTENT_SECURITY_POLICY}; frame-ancestors 'none'`).toBe(CONTENT_SECURITY_POLICY);
  });

  it('is sent as a header with every app:// file', () => {
    const headers = appResponseHeaders('/srv/renderer/index.html');
    expect(headers['Content-Security-Policy']).toBe(CONTENT_SECURITY_POLICY);
    expect(headers['X-Content-Type-Options']).toBe('nosniff');
  });

  it('loosens only styles and the dev server socket under electron-vite dev', () => {
    const dev = parseCsp(devContentSecurityPolicy('http://localhost:5173/'));
    expect(dev.get('script-src')).toEqual(["'self'"]);
    expect(dev.get('style-src')).toEqual(["'self'", "'unsafe-inline'"]);
    expect(dev.get('connect-src')).toEqual(["'self'", 'ws://localhost:5173']);
    expect(dev.get('default-src')).toEqual(["'none'"]);
  });
});

describe('navigation, windows and permissions', () => {
  it('denies every navigation, including to the app itself', () => {
    for (const url of [
      'https://example.com/',
      'http://127.0.0.1:8787/',
      'file:///etc/passwd',
      APP_ENTRY_URL,
      `${APP_ORIGIN}/other.html`,
      'javascript:alert(1)',
      'data:text/html,<p>x</p>',
      'about:blank',
      '',
    ]) {
      expect(isNavigationAllowed(url), url).toBe(false);
    }
  });

  it('denies window.open and target=_blank', () => {
    expect(windowOpenHandler()).toEqual({ action: 'deny' });
  });

  it('refuses every permission request and check', () => {
    const permissions = [
      'clipboard-read',
      'clipboard-sanitized-write',
      'display-capture',
      'fullscreen',
      'geolocation',
      'idle-detection',
      'media',
      'mediaKeySystem',
      'midi',
      'midiSysex',
      'notifications',
      'pointerLock',
      'keyboardLock',
      'openExternal',
      'speaker-selection',
      'storage-access',
      'top-level-storage-access',
      'window-management',
      'unknown',
      'fileSystem',
      'hid',
      'serial',
      'usb',
      'bluetooth',
    ];
    for (const permission of permissions) {
      const answers: boolean[] = [];
      permissionRequestHandler({}, permission, (granted) => answers.push(granted));
      expect(answers, permission).toEqual([false]);
    }
    expect(permissionCheckHandler()).toBe(false);
  });

  it('answers IPC from any other frame with a plain-sentence refusal', () => {
    expect(UNTRUSTED_SENDER_RESULT.ok).toBe(false);
    if (UNTRUSTED_SENDER_RESULT.ok) return;
    expect(UNTRUSTED_SENDER_RESULT.error.code).toBe('UNTRUSTED_SENDER');
    expect(UNTRUSTED_SENDER_RESULT.error.message).toBe('This request did not come from the app window.');
    expect(Object.isFrozen(UNTRUSTED_SENDER_RESULT)).toBe(true);
  });
});

describe('app:// scheme', () => {
  const root = resolve('/srv/sealed/out/renderer');

  it('is a standard, secure origin without extra powers', () => {
    expect(APP_ORIGIN).toBe('app://sealed');
    expect(APP_ENTRY_URL).toBe('app://sealed/index.html');
    expect(appSchemePrivileges).toMatchObject({ standard: true, secure: true });
    expect(appSchemePrivileges).toMatchObject({
      bypassCSP: false,
      allowServiceWorkers: false,
      corsEnabled: false,
      stream: false,
    });
  });

  it('maps app URLs to files under the renderer folder', () => {
    expect(resolveAppFile('app://sealed/', root)).toBe(join(root, 'index.html'));
    expect(resolveAppFile('app://sealed', root)).toBe(join(root, 'index.html'));
    expect(resolveAppFile('app://sealed/index.html', root)).toBe(join(root, 'index.html'));
    expect(resolveAppFile('app://sealed/assets/index-BzoyW1i0.js', root)).toBe(
      join(root, 'assets', 'index-BzoyW1i0.js'),
    );
    expect(resolveAppFile('app://sealed/assets/a%20b.css?v=1#x', root)).toBe(join(root, 'assets', 'a b.css'));
  });

  it('refuses path traversal however it is spelled', () => {
    const attempts = [
      'app://sealed/..%2f..%2f..%2fetc%2fpasswd',
      'app://sealed/..%2F..%2Fetc/passwd.html',
      'app://sealed/assets/..%5c..%5c..%5cwindows%5cwin.ini',
      'app://sealed/%2e%2e/%2e%2e/etc/hosts.html',
      'app://sealed/.%2e/.%2e/secret.js',
      'app://sealed/%2fetc%2fpasswd.html',
      'app://sealed/C:%5cWindows%5cwin.ini',
      'app://sealed/c:/Windows/win.ini',
      'app://sealed/index.html%00.png',
      'app://sealed/%E0%A4%A.js',
      'app://sealed/.env',
      'app://sealed/assets/.hidden.js',
      'app://sealed//etc/passwd.html',
    ];
    for (const url of attempts) {
      const file = resolveAppFile(url, root);
      // Either refused, or (after URL normalisation folded the dots) still inside the renderer folder.
      if (file !== undefined) expect(file.startsWith(root + '/'), `${url} -> ${file}`).toBe(true);
    }
    expect(attempts.filter((url) => resolveAppFile(url, root) !== undefined)).toEqual([
      'app://sealed/%2e%2e/%2e%2e/etc/hosts.html',
      'app://sealed/.%2e/.%2e/secret.js',
    ]);
    // Those two were normalised by the URL parser into plain paths below the root.
    expect(resolveAppFile('app://sealed/%2e%2e/%2e%2e/etc/hosts.html', root)).toBe(
      join(root, 'etc', 'hosts.html'),
    );
  });

  it('refuses other schemes, hosts, credentials and file types', () => {
    for (const url of [
      'file:///srv/sealed/out/renderer/index.html',
      'https://sealed/index.html',
      'app://evil/index.html',
      'app://sealed.evil/index.html',
      'app://user:pw@sealed/index.html',
      'app://sealed/assets/',
      'app://sealed/package.json.bak',
      'app://sealed/main.cjs',
      'app://sealed/key.pem',
      'not a url',
    ]) {
      expect(resolveAppFile(url, root), url).toBeUndefined();
    }
  });

  it('serves each file type with its MIME type', () => {
    expect(contentTypeFor('index.html')).toBe('text/html; charset=utf-8');
    expect(contentTypeFor('a.js')).toBe('text/javascript; charset=utf-8');
    expect(contentTypeFor('a.CSS')).toBe('text/css; charset=utf-8');
    expect(contentTypeFor('a.svg')).toBe('image/svg+xml');
    expect(contentTypeFor('a.png')).toBe('image/png');
    expect(contentTypeFor('a.woff2')).toBe('font/woff2');
    expect(contentTypeFor('a.exe')).toBeUndefined();
    expect(contentTypeFor('Makefile')).toBeUndefined();
  });
});

describe('IPC sender check (services/ipc.ts) agrees with the app:// origin', () => {
  it('trusts the pages the app serves', () => {
    expect(isAppUrl(APP_ENTRY_URL, APP_ROOT_URL)).toBe(true);
    expect(isAppUrl(`${APP_ENTRY_URL}?x=1#top`, APP_ROOT_URL)).toBe(true);
  });

  it('trusts no other origin, scheme or file', () => {
    for (const url of [
      'file:///srv/sealed/out/renderer/index.html',
      'app://evil/index.html',
      'app://sealed.evil/index.html',
      'app://user@sealed/index.html',
      'https://sealed/index.html',
      'http://localhost:5173/',
      'about:blank',
      'data:text/html,x',
      '',
    ]) {
      expect(isAppUrl(url, APP_ROOT_URL), url).toBe(false);
    }
  });

  it('refuses an untrusted page with the same code the shell uses for a foreign frame', async () => {
    const dispatch = createIpcDispatcher(
      { getStatus: () => Promise.reject(new Error('must not be called')) } as never,
      { isTrustedSender: (url) => isAppUrl(url, APP_ROOT_URL) },
    );
    const result = await dispatch('https://example.com/', 'getStatus', undefined);
    expect(result.ok).toBe(false);
    if (result.ok || UNTRUSTED_SENDER_RESULT.ok) return;
    expect(result.error.code).toBe(UNTRUSTED_SENDER_RESULT.error.code);
  });
});
