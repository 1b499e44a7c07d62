// Builds JavaScript plugins into components with componentize-js' Node API:
//   node build.mjs OUT_DIR PLUGIN_DIR...
// Each PLUGIN_DIR holds index.js and plugin.toml; OUT_DIR/<folder name>/ receives the
// manifest and the component it names (`<name>.wasm` unless the manifest says otherwise).
import { componentize } from '@bytecodealliance/componentize-js';
import { mkdir, writeFile, readFile, copyFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const wit = resolve(here, '../../../wit');

const [out, ...dirs] = process.argv.slice(2);
if (!out || dirs.length === 0) {
  console.error('usage: node build.mjs OUT_DIR PLUGIN_DIR...');
  process.exit(2);
}
for (const dir of dirs.map((d) => resolve(d))) {
  const manifest = await readFile(join(dir, 'plugin.toml'), 'utf8');
  const field = (key) => new RegExp(`^${key}\\s*=\\s*"([^"]+)"`, 'm').exec(manifest)?.[1];
  const kind = field('kind');
  if (!['action', 'data-source', 'functions'].includes(kind)) {
    throw new Error(`${dir}/plugin.toml: unknown kind ${kind}`);
  }
  const started = Date.now();
  const { component } = await componentize({
    sourcePath: join(dir, 'index.js'),
    witPath: wit,
    worldName: `parcours:plugin/${kind}@0.1.0`,
    // `fetch` goes out through wasi:http; a plugin has no incoming handler.
    disableFeatures: ['fetch-event'],
  });
  const target = join(out, basename(dir));
  await mkdir(target, { recursive: true });
  await writeFile(join(target, field('component') ?? `${field('name')}.wasm`), component);
  await copyFile(join(dir, 'plugin.toml'), join(target, 'plugin.toml'));
  console.log(`built ${basename(dir)}: ${component.length} bytes in ${Date.now() - started} ms`);
}
