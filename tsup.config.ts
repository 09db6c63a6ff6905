import { rename, writeFile } from 'node:fs/promises';
import { defineConfig } from 'tsup';

// One self-contained file that users copy into /opt/cni/bin: CommonJS (so the
// same bundle can become a Node single executable later), every dependency
// inlined, no node_modules at run time.
export default defineConfig({
  entry: { 'masq-janitor': 'src/main.ts' },
  outDir: 'dist',
  format: ['cjs'],
  platform: 'node',
  target: 'node20',
  noExternal: [/.*/],
  splitting: false,
  sourcemap: false,
  clean: false,
  minify: true,
  banner: { js: '#!/usr/bin/env node' },
  // No import() may survive bundling: esbuild keeps `import('node:x')` of builtins as a real import(),
  // which throws ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING inside a SEA built with useCodeCache.
  esbuildOptions: (o) => {
    o.supported = { ...o.supported, 'dynamic-import': false };
  },
  outExtension: () => ({ js: '.cjs' }),
  // The plugin file must be named exactly like its CNI `type`, with no extension.
  onSuccess: async () => {
    await rename('dist/masq-janitor.cjs', 'dist/masq-janitor');
    await writeFile('dist/package.json', '{"type": "commonjs"}\n');
  },
});
