/*
 * copy-pow.mjs - the build's last step: the project's proof-of-work solver
 * (web/pow/solver.js, and pow.wasm when `make` has built it) copied into
 * dist/pow/, so that the built package answers challenges on its own.
 * Without pow.wasm the solver hashes with WebCrypto, far slower: said here,
 * not failed, since the package still works.
 */
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const from = join(here, '../../../web/pow');
const to = join(here, '../dist/pow');

mkdirSync(to, { recursive: true });
copyFileSync(join(from, 'solver.js'), join(to, 'solver.js'));
if (existsSync(join(from, 'pow.wasm'))) {
  copyFileSync(join(from, 'pow.wasm'), join(to, 'pow.wasm'));
} else {
  rmSync(join(to, 'pow.wasm'), { force: true });
  console.warn('copy-pow: web/pow/pow.wasm is not built (make): '
    + 'challenges will be solved with WebCrypto, far slower');
}
