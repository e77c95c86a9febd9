import { mkdirSync, writeFileSync } from 'node:fs';
import { loadKpis, renderHtml, summarize } from '../src/digest.js';

mkdirSync('dist', { recursive: true });
writeFileSync('dist/digest.html', renderHtml(summarize(loadKpis())));
console.log('wrote dist/digest.html');
