import { createServer } from 'node:http';
import { barChart } from '@klaudbiusz-samples/chart-kit';
import { byDepot } from './utilisation.js';

const FLEET = { north: 4, south: 2 };
const TRIPS = [
  { depot: 'north', hours: 30 },
  { depot: 'south', hours: 12 },
];

const server = createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    return res.end('{"ok":true}');
  }
  if (req.url === '/api/utilisation') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    return res.end(JSON.stringify(byDepot(TRIPS, FLEET)));
  }
  res.writeHead(200, { 'Content-Type': 'text/html' });
  return res.end(barChart(byDepot(TRIPS, FLEET)));
});

server.listen(Number(process.env.PORT || 3000));
