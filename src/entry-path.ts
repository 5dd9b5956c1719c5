/**
 * Where a child process's entry point is. Children always run the built JavaScript in dist/:
 * from dist that is next to the caller; from the TypeScript sources (tests run them directly)
 * it is the same path under dist/, which `npm test` builds first.
 */
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export function builtEntry(relative: string, fromUrl: string): string {
  const file = fileURLToPath(new URL(relative, fromUrl));
  const parts = file.split(path.sep);
  if (parts.includes('dist')) return file;
  const src = parts.lastIndexOf('src');
  if (src < 0) return file;
  return [...parts.slice(0, src), 'dist', ...parts.slice(src)].join(path.sep);
}
