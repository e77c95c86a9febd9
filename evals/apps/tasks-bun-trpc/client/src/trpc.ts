import { createTRPCClient, httpBatchLink } from '@trpc/client';
import superjson from 'superjson';
import type { AppRouter } from '../../server/src/router';

export const trpc = createTRPCClient<AppRouter>({
  links: [httpBatchLink({ url: '/api', transformer: superjson })],
});
