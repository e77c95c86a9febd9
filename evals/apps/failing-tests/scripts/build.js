import { cpSync } from 'node:fs';

cpSync('public', 'dist', { recursive: true });
console.log('copied public/ -> dist/');
