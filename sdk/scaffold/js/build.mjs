// Builds this plugin into a WebAssembly component with componentize-js:
//   npm ci && npm run build
// Reads src/index.js and the plugin contract in wit/, writes the component plugin.toml
// names (build/<name>.wasm). Nothing is written beside the sources.
import { componentize } from '@bytecodealliance/componentize-js';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const manifest = await readFile(join(here, 'plugin.toml'), 'utf8');
const field = (key) => new RegExp(`^${key}\\s*=\\s*"([^"]+)"`, 'm').exec(manifest)?.[1];
const kind = field('kind');
if (!['action', 'data-source', 'functions'].includes(kind)) {
  console.error(`plugin.toml: kind: "${kind}" is not action, data-source or functions`);
  process.exit(1);
}
const started = Date.now();
const { component } = await componentize({
  sourcePath: join(here, 'src/index.js'),
  witPath: join(here, 'wit'),
  worldName: `parcours:plugin/${kind}@0.1.0`,
  // `fetch` goes out through wasi:http; a plugin has no incoming handler.
  disableFeatures: ['fetch-event'],
});
const out = join(here, field('component') ?? `build/${field('name')}.wasm`);
await mkdir(dirname(out), { recursive: true });
await writeFile(out, component);
console.log(`built ${out}: ${component.length} bytes in ${Date.now() - started} ms`);
