// Builds the dashboard: type-checks src/ (tsc --noEmit), bundles it with
// esbuild into dist/ (minified, content-hashed asset names, the page naming
// them), and records a hash of the sources in dist/build.json, which a Go
// test holds against src/ so a stale dist is noticed. --tests bundles the
// unit tests (src/*.test.ts) for node --test instead, into .build/test or
// the folder after --out (go test's own, so runs never share one).
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = dirname(fileURLToPath(import.meta.url));
const src = join(root, 'src');

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]);
}

// sourcesHash is what web/web_test.go computes too: every input of the
// build, by path relative to web/ in byte order, each as
// "path\n<length>\n<bytes>".
export function sourcesHash() {
  const files = ['build.mjs', 'package.json', 'package-lock.json', 'tsconfig.json',
    ...walk(src).map((f) => relative(root, f).split('\\').join('/'))].sort();
  const h = createHash('sha256');
  for (const f of files) {
    const b = readFileSync(join(root, f));
    h.update(`${f}\n${b.length}\n`);
    h.update(b);
  }
  return h.digest('hex');
}

async function buildTests() {
  const at = process.argv.indexOf('--out');
  const out = at > 0 && process.argv[at + 1] ? process.argv[at + 1] : join(root, '.build', 'test');
  rmSync(out, { recursive: true, force: true });
  const entries = walk(src).filter((f) => f.endsWith('.test.ts'));
  await esbuild.build({
    entryPoints: entries, outdir: out, bundle: true, platform: 'node', format: 'esm',
    outExtension: { '.js': '.mjs' }, logLevel: 'warning',
  });
}

async function buildDist() {
  try {
    execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['--noEmit', '-p', root], { stdio: 'inherit' });
  } catch {
    console.error('build: the type check failed');
    process.exit(1);
  }
  const dist = join(root, 'dist');
  rmSync(dist, { recursive: true, force: true });
  mkdirSync(join(dist, 'assets'), { recursive: true });
  const result = await esbuild.build({
    entryPoints: { app: join(src, 'main.ts') },
    outdir: join(dist, 'assets'), bundle: true, splitting: true, format: 'esm', minify: true,
    target: 'es2022', entryNames: '[name]-[hash]', chunkNames: 'chunk-[hash]', assetNames: '[name]-[hash]',
    metafile: true, legalComments: 'linked', logLevel: 'warning',
  });
  let script = '', style = '';
  for (const out of Object.keys(result.metafile.outputs)) {
    const url = '/assets/' + relative(join(dist, 'assets'), join(process.cwd(), out)).split('\\').join('/');
    // The entry is named app-HASH (other outputs are chunks, dynamic imports included).
    if (/\/app-[^/.]+\.js$/.test(out)) script = url;
    if (/\/app-[^/.]+\.css$/.test(out)) style = url;
  }
  if (!script || !style) throw new Error(`build: no entry script or style in ${Object.keys(result.metafile.outputs)}`);
  const page = readFileSync(join(src, 'index.html'), 'utf8').replace('{{script}}', script).replace('{{style}}', style);
  writeFileSync(join(dist, 'index.html'), page);
  copyFileSync(join(src, 'favicon.svg'), join(dist, 'assets', 'favicon.svg'));
  writeFileSync(join(dist, 'build.json'), JSON.stringify({ sources_sha256: sourcesHash() }, null, 2) + '\n');
  const sizes = Object.entries(result.metafile.outputs).map(([o, m]) => `${relative(root, join(process.cwd(), o))} ${m.bytes}`);
  console.log(sizes.join('\n'));
}

if (process.argv.includes('--tests')) await buildTests();
else await buildDist();
