// Products of main.retail.products; a local copy stands in for the Databricks
// warehouse so the sample runs offline.
export const products = [
  { sku: 'KB-01', name: 'Mechanical keyboard', category: 'peripherals', price: 129.0, in_stock: true },
  { sku: 'MS-07', name: 'Wireless mouse', category: 'peripherals', price: 39.9, in_stock: true },
  { sku: 'MN-27', name: '27" monitor', category: 'displays', price: 289.0, in_stock: false },
];

export function searchProducts(list, { category, inStockOnly = false } = {}) {
  return list.filter((p) => (!category || p.category === category) && (!inStockOnly || p.in_stock));
}
