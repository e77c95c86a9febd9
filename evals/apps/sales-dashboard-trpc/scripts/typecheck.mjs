// Syntax-checks every JavaScript module with `node --check`.
// The app is plain ESM JavaScript, so this stands in for `tsc --noEmit`.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const SKIP = new Set(['node_modules', 'dist']);

function* jsFiles(path) {
  if (statSync(path).isFile()) {
    yield path;
    return;
  }
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    if (SKIP.has(entry.name)) continue;
    const child = join(path, entry.name);
    if (entry.isDirectory()) yield* jsFiles(child);
    else if (/\.[cm]?js$/.test(entry.name)) yield child;
  }
}

let checked = 0;
let failed = 0;
for (const root of process.argv.slice(2)) {
  for (const file of jsFiles(root)) {
    checked += 1;
    try {
      execFileSync(process.execPath, ['--check', file], { stdio: 'pipe' });
    } catch (err) {
      failed += 1;
      process.stderr.write(String(err.stderr));
    }
  }
}
console.log(`typecheck: ${checked} files checked, ${failed} with errors`);
process.exit(failed ? 1 : 0);
