/**
 * Serves the web console (src/console, bundled at build into dist/console) at `/console/`, and sends
 * `/` there. The console is static files and nothing else: every call it makes goes to the public
 * API with the key the user pasted, so it can do nothing that key cannot.
 *
 * The pages carry a strict Content-Security-Policy — scripts, styles and connections from this origin
 * only, no inline script or style, no framing — so an injected string can never run as code.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import express, { type Express } from 'express';
import { ApiError } from '../domain/errors';

/** Where the build puts the console (scripts/bundle-console.ts). */
export const CONSOLE_DIR = join(__dirname, '..', '..', 'console');

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export function mountConsole(app: Express, dir = CONSOLE_DIR): void {
  app.get('/', (_req, res) => res.redirect(302, '/console/'));
  // Express routes ignore a trailing slash, so this also sees `/console/`; only the bare path moves (the page's relative URLs need the slash).
  app.get('/console', (req, res, next) => (req.originalUrl.split('?')[0] === '/console' ? res.redirect(301, '/console/') : next()));
  app.use('/console', (_req, res, next) => {
    res.setHeader('Content-Security-Policy', CONSOLE_CSP);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    // The bundle's names do not change between builds: always revalidate rather than serve a stale one.
    res.setHeader('Cache-Control', 'no-cache');
    if (!existsSync(join(dir, 'index.html'))) {
      next(new ApiError('UNAVAILABLE', 'the console is not built: run `npm run build`'));
      return;
    }
    next();
  });
  app.use('/console', express.static(dir, { index: 'index.html', redirect: false, dotfiles: 'ignore', etag: true, lastModified: true }));
}
