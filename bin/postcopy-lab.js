#!/usr/bin/env node
// Tiny launcher: everything lives in dist/, built by `npm install` (prepare) or `npm run build`.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/src/cli.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write('postcopy-lab: dist/ is missing; run `npm install` (or `npm run build`) first.\n');
  process.exit(2);
}
await import(cli.href);
