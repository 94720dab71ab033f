// layers_selftest.mjs - layers.mjs shown to fail: small source trees, each
// with one fault of the kind it looks for (an upward include, two headers
// of one name, a circle of includes, two files of a folder that call each
// other), must each be refused with the files named; the same trees
// without the fault must pass.
//
//   node layers_selftest.mjs   (the symbol check needs nm, and a C compiler:
//                              $CC, or cc)
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const layers = path.join(path.dirname(fileURLToPath(import.meta.url)), 'layers.mjs');

// A tree from {"src/mod/file": text}; .c files listed in compile are
// built into BUILD/CMakeFiles/holdfast_<mod>.dir/src/<mod>/<file>.o, where
// CMake puts them, for the symbol check.
function tree(files, compile = []) {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'layers-'));
    for (const [name, text] of Object.entries(files)) {
        fs.mkdirSync(path.join(root, path.dirname(name)), { recursive: true });
        fs.writeFileSync(path.join(root, name), text);
    }
    for (const name of compile) {
        const [, mod, file] = name.split('/');
        const out = path.join(root, 'build', 'CMakeFiles', `holdfast_${mod}.dir`, 'src', mod, `${file}.o`);
        fs.mkdirSync(path.dirname(out), { recursive: true });
        execFileSync(process.env.CC || 'cc', ['-c', '-o', out, path.join(root, name)]);
    }
    return root;
}

function run(root, withBuild) {
    const args = [layers, path.join(root, 'src')];
    if (withBuild) {
        args.push(path.join(root, 'build'));
    }
    const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
    fs.rmSync(root, { recursive: true, force: true });
    return r;
}

function expectRefused(what, files, says, compile = []) {
    const r = run(tree(files, compile), compile.length > 0);
    assert.equal(r.status, 1, `${what}: exit status ${r.status}\n${r.stdout}${r.stderr}`);
    for (const s of says) {
        assert.ok(r.stderr.includes(s), `${what}: "${s}" not in:\n${r.stderr}`);
    }
    console.log(`ok: ${what} is refused`);
}

function expectPassed(what, files, compile = []) {
    const r = run(tree(files, compile), compile.length > 0);
    assert.equal(r.status, 0, `${what}: exit status ${r.status}\n${r.stdout}${r.stderr}`);
    console.log(`ok: ${what} passes`);
}

const base = {
    'src/engine/engine.h': 'int engine_f(void);\n',
    'src/engine/engine.c': '#include "engine.h"\nint engine_f(void) { return 1; }\n',
    'src/guard/guard.h': 'int guard_f(void);\n',
    'src/guard/guard.c': '#include "guard.h"\n#include "engine.h"\nint guard_f(void) { return engine_f(); }\n',
};

expectPassed('a tree whose arrows go down', base);
expectRefused('an include upward', {
    ...base,
    'src/engine/engine.c': '#include "engine.h"\n#include "guard.h"\nint engine_f(void) { return 1; }\n',
}, ['src/engine/engine.c includes src/guard/guard.h: engine may not depend on guard']);
expectRefused('two headers of one name', {
    ...base,
    'src/policy/engine.h': 'int policy_f(void);\n',
}, ['two headers named engine.h']);
expectRefused('headers that include each other', {
    ...base,
    'src/guard/a.h': '#include "b.h"\n',
    'src/guard/b.h': '#include "a.h"\n',
}, ['these files include each other in a circle: src/guard/a.h, src/guard/b.h']);

// The symbol check: x.c and y.c share one header, so their includes show
// no circle; only what they call does.
const calls = {
    ...base,
    'src/guard/xy.h': 'int x_f(int n);\nint y_f(int n);\n',
    'src/guard/x.c': '#include "xy.h"\nint x_f(int n) { return n; }\n',
    'src/guard/y.c': '#include "xy.h"\nint y_f(int n) { return x_f(n); }\n',
};
expectPassed('files of a folder that call one way', calls, ['src/guard/x.c', 'src/guard/y.c']);
expectRefused('files of a folder that call each other', {
    ...calls,
    'src/guard/x.c': '#include "xy.h"\nint x_f(int n) { return n > 0 ? y_f(n - 1) : 0; }\n',
}, ['src/guard: these files call each other in a circle: x, y'], ['src/guard/x.c', 'src/guard/y.c']);
{
    const root = tree(base);
    fs.mkdirSync(path.join(root, 'build'));
    const r = run(root, true);
    assert.equal(r.status, 1, `a build directory without objects: exit status ${r.status}`);
    assert.ok(r.stderr.includes('no object files found'), r.stderr);
    console.log('ok: a build directory without objects is refused');
}
