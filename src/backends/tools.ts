import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';

/** The first executable called `name` on `path`, like execvp would pick. */
export function which(name: string, path: string): string | undefined {
  for (const dir of path.split(':')) {
    if (!dir) continue;
    const full = join(dir, name);
    try {
      accessSync(full, constants.X_OK);
      return full;
    } catch {
      // not here
    }
  }
  return undefined;
}
