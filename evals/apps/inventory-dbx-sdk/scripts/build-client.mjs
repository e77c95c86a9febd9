// Builds the client: minifies whitespace in index.html into client/dist/.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';

const html = readFileSync('client/src/index.html', 'utf8');
const minified = html.replace(/\n\s*/g, '\n').trim();
mkdirSync('client/dist', { recursive: true });
writeFileSync('client/dist/index.html', minified);
console.log(`built client/dist/index.html (${minified.length} bytes, from ${html.length})`);
