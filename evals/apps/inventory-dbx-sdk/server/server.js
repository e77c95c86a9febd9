import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runQuery } from './queries.js';

const INDEX_HTML = join(dirname(fileURLToPath(import.meta.url)), '..', 'client', 'dist', 'index.html');

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

export function createAppServer() {
  return createServer(async (req, res) => {
    const { pathname } = new URL(req.url, 'http://localhost');
    if (pathname === '/healthcheck') return sendJson(res, 200, { status: 'ok' });

    const match = pathname.match(/^\/api\/analytics\/([^/]+)$/);
    if (match) {
      if (req.method !== 'POST') return sendJson(res, 405, { error: 'use POST' });
      try {
        const data = runQuery(match[1]);
        return sendJson(res, 200, { query: match[1], data, row_count: data.length });
      } catch (err) {
        return sendJson(res, err.status ?? 500, { error: err.message });
      }
    }

    if (pathname === '/' || pathname === '/index.html') {
      try {
        const html = await readFile(INDEX_HTML);
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        return res.end(html);
      } catch {
        return sendJson(res, 503, { error: 'client not built: run npm run build' });
      }
    }
    return sendJson(res, 404, { error: 'not found' });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.env.DATABRICKS_APP_PORT || process.env.PORT || 8000);
  createAppServer().listen(port, () => console.log(`inventory app listening on port ${port}`));
}
