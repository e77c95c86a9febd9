import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { appRouter } from './router.js';
import { handleTrpcRequest } from './trpc.js';

const CLIENT_DIST = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'client', 'dist');
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css' };

async function serveStatic(res, pathname) {
  const file = normalize(join(CLIENT_DIST, pathname === '/' ? 'index.html' : pathname));
  if (!file.startsWith(CLIENT_DIST)) throw Object.assign(new Error('forbidden'), { code: 'ENOENT' });
  const body = await readFile(file);
  res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
  res.end(body);
}

export function createAppServer() {
  return createServer(async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === '/healthcheck') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'ok' }));
      return;
    }
    if (url.pathname.startsWith('/api/trpc/')) {
      await handleTrpcRequest(appRouter, req, res, url);
      return;
    }
    try {
      await serveStatic(res, url.pathname);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('Not found');
    }
  });
}
