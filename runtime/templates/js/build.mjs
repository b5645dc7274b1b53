// Builds {{name}}.js into a component with componentize-js' API.
//
//   node build.mjs [OUTPUT]      (default: {{name}}.wasm beside this file)
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile, rename } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

const here = fileURLToPath(new URL('.', import.meta.url));
const out = resolve(process.argv[2] ?? resolve(here, '{{name}}.wasm'));

const { component } = await componentize({
  sourcePath: resolve(here, '{{name}}.js'),
  witPath: resolve(here, 'wit'),
  worldName: 'initialiser-component',
});
await writeFile(`${out}.tmp`, component);
await rename(`${out}.tmp`, out);
