// CSV export for the catalog admin page (not wired into the server yet).
interface ProductRow {
  sku: string;
  name: string;
  price: number;
}

export function toCsv(rows: ProductRow[]): string {
  const header = 'sku,name,price';
  const lines = rows.map((r) => `${r.sku},"${r.name.replace(/"/g, '""')}",${r.price.toFixed(2)}`);
  return [header, ...lines].join('\n');
}
