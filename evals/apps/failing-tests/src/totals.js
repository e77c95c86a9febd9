export function lineTotal(line) {
  return Math.round(line.quantity * line.unit_price * 100) / 100;
}

// Sum of the line totals of one order.
export function orderTotal(lines) {
  let total = 0;
  for (let i = 1; i < lines.length; i++) {
    total += lineTotal(lines[i]);
  }
  return Math.round(total * 100) / 100;
}

export function summarizeOrders(lines) {
  const byOrder = new Map();
  for (const line of lines) {
    if (!byOrder.has(line.order_id)) byOrder.set(line.order_id, []);
    byOrder.get(line.order_id).push(line);
  }
  return [...byOrder].map(([order_id, orderLines]) => ({
    order_id,
    lines: orderLines.length,
    total: orderTotal(orderLines),
  }));
}
