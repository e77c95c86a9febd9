import { readFileSync } from 'node:fs';
import { publicProcedure, router } from './trpc.js';

// Rows of main.crm.accounts; the sample reads a local JSON copy instead of the
// Databricks warehouse so it runs offline.
export const loadAccounts = () => JSON.parse(readFileSync(new URL('../data/accounts.json', import.meta.url), 'utf8'));

export const activeAccounts = (accounts) => accounts.filter((a) => a.status === 'ACTIVE');

export const churnRisk = (accounts) =>
  activeAccounts(accounts)
    .filter((a) => a.health_score < 0.3)
    .sort((a, b) => b.arr - a.arr);

export const appRouter = router({
  getActiveAccounts: publicProcedure.query(() => activeAccounts(loadAccounts())),
  getChurnRisk: publicProcedure.query(() => churnRisk(loadAccounts())),
});
