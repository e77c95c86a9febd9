// Tiny bundler: follows relative imports from the entry point and concatenates
// the modules into one browser script (stand-in for esbuild in this sample).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const [entry, outfile] = process.argv.slice(2);
const IMPORT_RE = /^import\s+(?:[\w{}\s,*]+\s+from\s+)?['"](\.[^'"]+)['"];?\s*$/gm;
const seen = new Map();
const errors = [];

function visit(file) {
  if (seen.has(file)) return;
  seen.set(file, '');
  const source = readFileSync(file, 'utf8');
  for (const match of source.matchAll(IMPORT_RE)) {
    const target = join(dirname(file), match[1]);
    if (!existsSync(target)) {
      const line = source.slice(0, match.index).split('\n').length;
      errors.push(`✘ [ERROR] Could not resolve "${match[1]}"\n\n    ${relative('.', file)}:${line}:${match[0].indexOf(match[1]) - 1}:\n      ${line} │ ${match[0]}\n`);
      continue;
    }
    visit(target);
  }
  seen.set(file, source.replace(IMPORT_RE, '').replace(/^export\s+/gm, ''));
}

visit(entry);
if (errors.length) {
  console.error(errors.join('\n'));
  console.error(`${errors.length} error${errors.length > 1 ? 's' : ''}`);
  process.exit(1);
}
mkdirSync(dirname(outfile), { recursive: true });
writeFileSync(outfile, [...seen.values()].reverse().join('\n'));
console.log(`  ${outfile}  ${[...seen.values()].join('').length} bytes`);
