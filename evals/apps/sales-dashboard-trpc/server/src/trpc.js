// Minimal tRPC-compatible procedure builder and HTTP adapter.
// Mirrors the @trpc/server API surface the app uses (router, publicProcedure,
// .input().query()/.mutation()) so the app runs without installing packages.

function createBuilder(def = {}) {
  return {
    input(parser) {
      return createBuilder({ ...def, parser });
    },
    query(resolver) {
      return { ...def, type: 'query', resolver };
    },
    mutation(resolver) {
      return { ...def, type: 'mutation', resolver };
    },
  };
}

export const publicProcedure = createBuilder();

export function router(procedures) {
  return Object.freeze({ ...procedures });
}

export class TRPCError extends Error {
  constructor({ code, message }) {
    super(message);
    this.code = code;
  }
}

const HTTP_STATUS = { BAD_REQUEST: 400, NOT_FOUND: 404, METHOD_NOT_SUPPORTED: 405, INTERNAL_SERVER_ERROR: 500 };

export async function callProcedure(appRouter, path, type, rawInput) {
  const procedure = appRouter[path];
  if (!procedure) throw new TRPCError({ code: 'NOT_FOUND', message: `No "${type}"-procedure on path "${path}"` });
  if (procedure.type !== type) {
    throw new TRPCError({ code: 'METHOD_NOT_SUPPORTED', message: `Unsupported ${type} on ${procedure.type} "${path}"` });
  }
  let input = rawInput;
  if (procedure.parser) {
    try {
      input = procedure.parser(rawInput);
    } catch (err) {
      throw new TRPCError({ code: 'BAD_REQUEST', message: err.message });
    }
  }
  return procedure.resolver({ input });
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : undefined;
}

// Handles GET /api/trpc/<query>?input=<json> and POST /api/trpc/<mutation>.
export async function handleTrpcRequest(appRouter, req, res, url) {
  const path = url.pathname.replace(/^\/api\/trpc\//, '');
  const type = req.method === 'GET' ? 'query' : 'mutation';
  let body;
  try {
    const input = type === 'query'
      ? (url.searchParams.has('input') ? JSON.parse(url.searchParams.get('input')) : undefined)
      : await readBody(req);
    const data = await callProcedure(appRouter, path, type, input);
    body = { status: 200, payload: { result: { data } } };
  } catch (err) {
    const code = err instanceof TRPCError ? err.code : 'INTERNAL_SERVER_ERROR';
    const httpStatus = HTTP_STATUS[code] ?? 500;
    body = { status: httpStatus, payload: { error: { message: err.message, data: { code, httpStatus, path } } } };
  }
  res.writeHead(body.status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body.payload));
}
