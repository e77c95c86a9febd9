// Build step: generates the API description served to API consumers (dist/openapi.json).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { routes } from '../src/app.mjs';

const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
const paths = {};
for (const r of routes) paths[r.path] = { [r.method.toLowerCase()]: { summary: r.summary } };
mkdirSync('dist', { recursive: true });
writeFileSync('dist/openapi.json', JSON.stringify({ openapi: '3.0.3', info: { title: pkg.name, version: pkg.version }, paths }, null, 2));
console.log(`dist/openapi.json: ${routes.length} routes`);
