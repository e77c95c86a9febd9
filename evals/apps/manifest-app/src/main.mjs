import { createApp } from './app.mjs';
import { loadConfig } from './config.js';

const config = loadConfig();
createApp(config).listen(config.port, config.host, () => {
  console.log(`${config.greeting}: shipment-tracker listening on http://${config.host}:${config.port}`);
});
