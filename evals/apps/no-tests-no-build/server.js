const http = require('http');

// Row counts per table; hard-coded stand-in for a warehouse query.
const tables = [
  { table: 'main.default.trips', rows: 21932 },
  { table: 'main.default.zones', rows: 265 },
];

const server = http.createServer((req, res) => {
  if (req.url === '/') {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(`<h1>Tables</h1><ul>${tables.map((t) => `<li>${t.table}: ${t.rows}</li>`).join('')}</ul>`);
  } else if (req.url === '/api/tables') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(tables));
  } else {
    res.writeHead(404);
    res.end('Not Found');
  }
});

server.listen(process.env.PORT || 3000, () => {
  console.log('Server running on port ' + (process.env.PORT || 3000));
});
