import { copyFileSync, mkdirSync } from 'node:fs';

mkdirSync('client/dist', { recursive: true });
copyFileSync('client/index.html', 'client/dist/index.html');
console.log('client built -> client/dist/index.html');
