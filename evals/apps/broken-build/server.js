// Revenue report server. Rows come from revenue.json, a local stand-in for the
// Databricks warehouse table (no credentials needed to run the sample).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

const rows = JSON.parse(readFileSync(new URL('./revenue.json', import.meta.url), 'utf8'));
const port = Number(process.env.PORT || 3000);

createServer((req, res) => {
  if (req.url === '/healthcheck') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end('{"status":"ok"}');
  }
  if (req.url === '/api/revenue') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ rows }));
  }
  if (req.url === '/') {
    res.writeHead(200, { 'content-type': 'text/html' });
    return res.end(readFileSync(new URL('./index.html', import.meta.url)));
  }
  if (req.url === '/bundle.js') {
    res.writeHead(200, { 'content-type': 'text/javascript' });
    return res.end(readFileSync(new URL('./dist/bundle.js', import.meta.url)));
  }
  res.writeHead(404);
  res.end();
}).listen(port, () => console.log(`revenue report on :${port}`));
