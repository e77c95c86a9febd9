import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { executeStatement, loadQuery } from './warehouse.js';

const json = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

export function createAppServer(execute = executeStatement) {
  return createServer(async (req, res) => {
    const { pathname } = new URL(req.url, 'http://localhost');
    if (pathname === '/healthcheck') return json(res, 200, { status: 'ok' });
    const match = pathname.match(/^\/api\/analytics\/([^/]+)$/);
    if (match && req.method === 'POST') {
      let sql;
      try {
        sql = await loadQuery(match[1]);
      } catch {
        return json(res, 404, { error: `unknown query ${match[1]}` });
      }
      try {
        return json(res, 200, { data: await execute(sql) });
      } catch (err) {
        console.error(`[analytics] ${match[1]} failed: ${err.message}`);
        return json(res, 500, { error: 'warehouse unreachable', detail: err.message });
      }
    }
    if (pathname === '/') {
      try {
        res.writeHead(200, { 'content-type': 'text/html' });
        return res.end(await readFile(new URL('../client/dist/index.html', import.meta.url)));
      } catch {
        return json(res, 503, { error: 'client not built' });
      }
    }
    return json(res, 404, { error: 'not found' });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.env.DATABRICKS_APP_PORT || process.env.PORT || 8000);
  createAppServer().listen(port, () => console.log(`finance-kpis listening on ${port}`));
}
