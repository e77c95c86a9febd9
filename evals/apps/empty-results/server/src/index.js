import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { appRouter } from './router.js';
import { handleTrpcRequest } from './trpc.js';

const port = Number(process.env.DATABRICKS_APP_PORT || process.env.PORT || 8000);

createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/healthcheck') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ status: 'ok', time: new Date().toISOString() }));
  }
  if (url.pathname.startsWith('/api/trpc/')) return handleTrpcRequest(appRouter, req, res, url);
  try {
    const html = readFileSync(new URL('../../client/dist/index.html', import.meta.url));
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(html);
  } catch {
    res.writeHead(404);
    res.end('client not built');
  }
}).listen(port, () => console.log(`customer-health API on http://localhost:${port}`));
