import { copyFileSync, mkdirSync } from 'node:fs';

mkdirSync('dist', { recursive: true });
copyFileSync('public/index.html', 'dist/index.html');
console.log('build complete: dist/index.html');
