import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createDb } from './db.js';
import { createRouter } from './router.js';
import { handleTrpcRequest } from './trpc.js';

const serverRoot = new URL('../', import.meta.url);
const config = JSON.parse(readFileSync(new URL('config/warehouse.json', serverRoot), 'utf8'));
const appRouter = createRouter(createDb(config, serverRoot));
const port = Number(process.env.DATABRICKS_APP_PORT || process.env.PORT || 8000);

createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/healthcheck') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end('{"status":"ok"}');
  }
  if (url.pathname.startsWith('/api/trpc/')) return handleTrpcRequest(appRouter, req, res, url);
  res.writeHead(404);
  res.end();
}).listen(port, () => console.log(`pipeline monitor listening on ${port}`));
