// Order lines of main.sales.order_lines. This sample keeps a local copy instead of
// querying the Databricks warehouse, so it runs without credentials.
export const orderLines = [
  { order_id: 'SO-1', sku: 'CHAIR', quantity: 4, unit_price: 89.0 },
  { order_id: 'SO-1', sku: 'DESK', quantity: 1, unit_price: 420.0 },
  { order_id: 'SO-2', sku: 'LAMP', quantity: 2, unit_price: 35.5 },
  { order_id: 'SO-3', sku: 'CHAIR', quantity: 10, unit_price: 85.0 },
  { order_id: 'SO-3', sku: 'MONITOR', quantity: 2, unit_price: 310.0 },
];
