// Reads the service configuration from the environment; refuses to start without it.
export function loadConfig(env = process.env) {
  const missing = ['SERVER_PORT', 'APP_GREETING'].filter((name) => !env[name]);
  if (missing.length) {
    throw new Error(`missing required environment variable(s): ${missing.join(', ')}`);
  }
  const port = Number(env.SERVER_PORT);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`invalid SERVER_PORT: ${env.SERVER_PORT}`);
  return { port, greeting: env.APP_GREETING, host: env.SERVER_HOST || '127.0.0.1' };
}
