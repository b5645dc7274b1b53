// Builds workspace-setup.js into a component with componentize-js' API (the `jco componentize`
// and `componentize-js` command lines fail on some machines with "failed to get path metadata").
//
//   node build.mjs [OUTPUT]      (default: workspace-setup.wasm beside this file)
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile, rename } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

const here = fileURLToPath(new URL('.', import.meta.url));
const out = resolve(process.argv[2] ?? resolve(here, 'workspace-setup.wasm'));

const { component } = await componentize({
  sourcePath: resolve(here, 'workspace-setup.js'),
  witPath: resolve(here, '../../../wit'),
  worldName: 'initialiser-component',
});
await writeFile(`${out}.tmp`, component);
await rename(`${out}.tmp`, out);
