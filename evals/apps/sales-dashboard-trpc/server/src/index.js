import { createAppServer } from './server.js';

const port = Number(process.env.DATABRICKS_APP_PORT || process.env.PORT || 8000);

createAppServer().listen(port, '0.0.0.0', () => {
  console.log(`sales-dashboard server listening on http://0.0.0.0:${port}`);
});
