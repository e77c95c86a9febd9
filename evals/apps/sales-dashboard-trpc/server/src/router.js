import { publicProcedure, router } from './trpc.js';
import { loadTable } from './warehouse.js';

const notes = [];

export function salesByRegion(orders) {
  const totals = new Map();
  for (const order of orders) {
    const row = totals.get(order.region) ?? { region: order.region, orders: 0, revenue: 0 };
    row.orders += 1;
    row.revenue = Math.round((row.revenue + order.quantity * order.unit_price) * 100) / 100;
    totals.set(order.region, row);
  }
  return [...totals.values()].sort((a, b) => b.revenue - a.revenue);
}

export function topProducts(orders, limit = 3) {
  const units = new Map();
  for (const order of orders) units.set(order.product, (units.get(order.product) ?? 0) + order.quantity);
  return [...units.entries()]
    .map(([product, unitsSold]) => ({ product, units_sold: unitsSold }))
    .sort((a, b) => b.units_sold - a.units_sold || a.product.localeCompare(b.product))
    .slice(0, limit);
}

function parseNote(input) {
  if (!input || typeof input.region !== 'string' || typeof input.text !== 'string' || !input.text.trim()) {
    throw new Error('expected { region: string, text: non-empty string }');
  }
  return { region: input.region, text: input.text.trim() };
}

export const appRouter = router({
  healthcheck: publicProcedure.query(() => ({ status: 'ok' })),

  getSales: publicProcedure.query(() => salesByRegion(loadTable('orders'))),

  addSalesNote: publicProcedure.input(parseNote).mutation(({ input }) => {
    const note = { id: notes.length + 1, ...input };
    notes.push(note);
    return note;
  }),

  getTopProducts: publicProcedure.query(() => topProducts(loadTable('orders'))),
});
