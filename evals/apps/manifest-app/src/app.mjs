import { createServer } from 'node:http';
import { loadShipments, searchShipments } from './shipments.js';

export const routes = [
  { method: 'GET', path: '/api/status', summary: 'Service status' },
  { method: 'POST', path: '/api/shipments/search', summary: 'Search shipments (JSON body: {status?, origin?})' },
];

async function readJson(req) {
  let text = '';
  for await (const chunk of req) text += chunk;
  return text ? JSON.parse(text) : {};
}

export function createApp({ greeting }) {
  return createServer(async (req, res) => {
    const send = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const { pathname } = new URL(req.url, 'http://localhost');
    if (pathname === '/api/status' && req.method === 'GET') return send(200, { status: 'ok', greeting });
    if (pathname === '/api/shipments/search') {
      if (req.method !== 'POST') return send(405, { error: 'POST a JSON filter' });
      let filter;
      try {
        filter = await readJson(req);
      } catch {
        return send(400, { error: 'body must be JSON' });
      }
      const items = searchShipments(loadShipments(), filter);
      return send(200, { items, total: items.length });
    }
    return send(404, { error: 'not found', routes: routes.map((r) => `${r.method} ${r.path}`) });
  });
}
