import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { openByPriority, tickets } from './tickets.js';


const server = createServer((req, res) => {
  if (req.url === '/healthcheck' || req.url === '/health') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end('{"status":"ok"}');
  }
  if (req.url === '/api/tickets/open') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify(openByPriority(tickets)));
  }
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end(readFileSync(new URL('./dist/index.html', import.meta.url)));
});

// TODO: make the port configurable; for now the OS picks a free one
server.listen(0, '127.0.0.1', () => {
  console.log(`Support tickets dashboard running at http://127.0.0.1:${server.address().port}`);
});
