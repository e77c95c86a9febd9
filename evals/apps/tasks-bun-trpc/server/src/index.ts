import { createHTTPServer } from '@trpc/server/adapters/standalone';
import { appRouter } from './router';

const port = Number(process.env['SERVER_PORT'] || 2022);
const server = createHTTPServer({
  router: appRouter,
  middleware: (req, res, next) => {
    res.setHeader('Access-Control-Allow-Origin', '*');
    next();
  },
});
server.listen(port);
console.log(`tasks server listening at port: ${port}`);
