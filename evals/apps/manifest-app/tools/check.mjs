// Static check: every module must parse (node --check).
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

const files = ['src', 'tools', 'tests'].flatMap((dir) =>
  readdirSync(dir).filter((f) => /\.m?js$/.test(f)).map((f) => `${dir}/${f}`),
);
for (const file of files) execFileSync(process.execPath, ['--check', file], { stdio: 'inherit' });
console.log(`check: ${files.length} modules OK`);
