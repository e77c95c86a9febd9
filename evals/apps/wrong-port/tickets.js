// Ticket rows. Stand-in for the warehouse table support.tickets (local fixture,
// so the sample needs no Databricks credentials).
export const tickets = [
  { id: 'T-1042', priority: 'high', status: 'open', opened: '2025-11-18' },
  { id: 'T-1043', priority: 'low', status: 'closed', opened: '2025-11-18' },
  { id: 'T-1047', priority: 'medium', status: 'open', opened: '2025-11-20' },
];

export function openByPriority(rows) {
  const counts = {};
  for (const t of rows) if (t.status === 'open') counts[t.priority] = (counts[t.priority] ?? 0) + 1;
  return Object.entries(counts).map(([priority, open]) => ({ priority, open }));
}
