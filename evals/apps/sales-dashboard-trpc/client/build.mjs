// Production build: copies the static client into dist/ and stamps the HTML.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const src = join(root, 'src');
const dist = join(root, 'dist');

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

let count = 0;
for (const name of readdirSync(src)) {
  if (name === 'index.html') {
    const html = readFileSync(join(src, name), 'utf8').replace('%BUILD_TIME%', new Date().toISOString());
    writeFileSync(join(dist, name), html);
  } else {
    copyFileSync(join(src, name), join(dist, name));
  }
  count += 1;
}
console.log(`client build: ${count} files written to dist/`);
