// Writes the static page with the catalog size baked in.
import { mkdirSync, writeFileSync } from 'node:fs';
import { products } from '../src/catalog.js';

mkdirSync('dist', { recursive: true });
writeFileSync(
  'dist/index.html',
  `<!doctype html><html><head><meta charset="utf-8"><title>Catalog</title></head><body><h1>Catalog (${products.length} products)</h1><ul id="p"></ul><script>fetch('/api/products').then(r=>r.json()).then(d=>{document.getElementById('p').innerHTML=d.items.map(p=>'<li>'+p.name+'</li>').join('')})</script></body></html>`,
);
console.log('dist/index.html written');
