// layers.mjs - the shape of the source, checked: the modules depend on each
// other only downward, and within a module no two files need each other.
//
//   node layers.mjs SRC_DIR [BUILD_DIR]
//
// Three checks, each of which fails with the offending files named:
//   1. includes between modules (src/<module>/) follow the allowed arrows
//      below, and no two headers share a name (a quoted include must mean
//      one file);
//   2. the files drawn from their includes have no circle (a header that
//      reaches itself compiles only thanks to its include guard);
//   3. with BUILD_DIR: within a module, the object files drawn from the
//      symbols each uses and defines (nm) have no circle: no two files of
//      a folder need each other, whichever header declares what.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

// Which modules each module may include from (src/*.h are everyone's).
const ALLOWED = {
    engine: [],
    policy: [],
    webhook: [],
    guard: ['engine', 'policy'],
    store: ['guard', 'engine', 'policy'],
    sim: ['guard', 'engine', 'policy'],
    server: ['store', 'guard', 'engine', 'policy', 'webhook', 'sim'],
};

const failures = [];
const fail = (msg) => failures.push(msg);

function sources(src) {
    const files = [];
    for (const mod of fs.readdirSync(src)) {
        const dir = path.join(src, mod);
        if (!fs.statSync(dir).isDirectory()) {
            continue;
        }
        for (const f of fs.readdirSync(dir)) {
            if (/\.[ch]$/.test(f)) {
                files.push({ mod, name: f, file: path.join(dir, f) });
            }
        }
    }
    return files;
}

function includes(file) {
    const text = fs.readFileSync(file, 'utf8');
    return [...text.matchAll(/^\s*#\s*include\s+"([^"]+)"/gm)].map((m) => m[1]);
}


// Tarjan's strongly connected components; returns those of more than one node.
function circles(nodes, edges) {
    let index = 0;
    const idx = new Map(), low = new Map(), on = new Set(), stack = [], found = [];
    const visit = (v) => {
        idx.set(v, index);
        low.set(v, index++);
        stack.push(v);
        on.add(v);
        for (const w of edges.get(v) ?? []) {
            if (!idx.has(w)) {
                visit(w);
                low.set(v, Math.min(low.get(v), low.get(w)));
            } else if (on.has(w)) {
                low.set(v, Math.min(low.get(v), idx.get(w)));
            }
        }
        if (low.get(v) === idx.get(v)) {
            const scc = [];
            let w;
            do {
                w = stack.pop();
                on.delete(w);
                scc.push(w);
            } while (w !== v);
            if (scc.length > 1) {
                found.push(scc.sort());
            }
        }
    };
    for (const v of nodes) {
        if (!idx.has(v)) {
            visit(v);
        }
    }
    return found;
}

function checkIncludes(src) {
    const files = sources(src);
    const headerMod = new Map();
    for (const f of files.filter((f) => f.name.endsWith('.h'))) {
        if (headerMod.has(f.name)) {
            fail(`two headers named ${f.name}: src/${headerMod.get(f.name)} and src/${f.mod}`);
        }
        headerMod.set(f.name, f.mod);
    }
    const graph = new Map(); // src/mod/file -> Set(src/mod/header)
    for (const f of files) {
        const from = `src/${f.mod}/${f.name}`;
        graph.set(from, graph.get(from) ?? new Set());
        for (const inc of includes(f.file)) {
            const mod = headerMod.get(inc);
            if (mod === undefined) {
                continue; // src/*.h, or a generated header
            }
            if (mod !== f.mod && !(ALLOWED[f.mod] ?? []).includes(mod)) {
                fail(`src/${f.mod}/${f.name} includes src/${mod}/${inc}: ${f.mod} may not depend on ${mod}`);
            }
            graph.get(from).add(`src/${mod}/${inc}`);
        }
    }
    for (const c of circles([...graph.keys()], graph)) {
        fail(`these files include each other in a circle: ${c.join(', ')}`);
    }
    return graph.size;
}

function objects(dir, out = []) {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) {
            objects(p, out);
        } else if (e.name.endsWith('.c.o') && p.includes(`${path.sep}src${path.sep}`)) {
            out.push(p);
        }
    }
    return out;
}

function checkSymbols(src, build) {
    // One library's objects per module folder (the installed binary's copy
    // of main.c aside): module -> [{unit, defined, used}]
    const mods = new Map();
    const cmakeFiles = path.join(build, 'CMakeFiles');
    for (const o of fs.existsSync(cmakeFiles) ? objects(cmakeFiles) : []) {
        const m = o.match(/\.dir\/src\/([^/]+)\/([^/]+)\.c\.o$/);
        if (m === null || !o.includes('holdfast_') ||
            !fs.existsSync(path.join(src, m[1], `${m[2]}.c`))) {
            continue; // another target's copy, or what a removed file left
        }
        const lines = execFileSync('nm', ['-P', o], { encoding: 'utf8' }).split('\n');
        const defined = new Set(), used = new Set();
        for (const l of lines) {
            const [sym, type] = l.split(' ');
            if (type === 'U') {
                used.add(sym);
            } else if (/^[TDBRC]$/.test(type ?? '')) {
                defined.add(sym);
            }
        }
        const list = mods.get(m[1]) ?? [];
        if (!list.some((u) => u.unit === m[2])) {
            list.push({ unit: m[2], defined, used });
        }
        mods.set(m[1], list);
    }
    let count = 0;
    for (const [mod, list] of mods) {
        count += list.length;
        const edges = new Map(list.map((u) => [u.unit, new Set()]));
        for (const a of list) {
            for (const b of list) {
                if (a !== b && [...a.used].some((s) => b.defined.has(s))) {
                    edges.get(a.unit).add(b.unit);
                }
            }
        }
        for (const c of circles([...edges.keys()], edges)) {
            fail(`src/${mod}: these files call each other in a circle: ${c.join(', ')}`);
        }
    }
    return count;
}

const [src, build] = process.argv.slice(2);
if (src === undefined) {
    console.error('usage: node layers.mjs SRC_DIR [BUILD_DIR]');
    process.exit(2);
}
const units = checkIncludes(src);
const objs = build !== undefined ? checkSymbols(src, build) : 0;
if (build !== undefined && objs === 0) {
    fail(`${build}: no object files found to check`);
}
for (const f of failures) {
    console.error(`layers: ${f}`);
}
console.log(`layers: ${units} files by their includes, ${objs} object files by their symbols: ` +
            `${failures.length === 0 ? 'no circle, every arrow downward' : `${failures.length} problems`}`);
process.exit(failures.length === 0 ? 0 : 1);
