/**
 * The demo, run as a newcomer would (non-interactively): it must pass every step of its story,
 * print the summary table, exit 0 and leave nothing behind. Needs root.
 */
import test from 'ava';
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';

const DEMO = fileURLToPath(new URL('../scripts/demo.js', import.meta.url));
const isRoot = process.getuid?.() === 0;
const asRoot = isRoot ? test : test.skip;

asRoot('the demo plays all five steps, prints the summary and exits 0, leaving no namespace behind', async (t) => {
  const result = await execa(process.execPath, [DEMO], { reject: false, timeout: 150_000, stdin: 'ignore' });
  t.is(result.exitCode, 0, result.stdout.slice(-3000));
  const summary = result.stdout.split('\n').filter((line) => /^[✔✘]\s+\d\. /.test(line));
  t.is(summary.length, 5, 'one summary row per step');
  t.true(summary.every((line) => line.startsWith('✔')));
  t.regex(result.stdout, /demo: every step did what it says/);
  t.regex(result.stdout, /reconfig-wg │ .*endpoint\.updated/, 'the real daemon logs are shown');
  t.regex(result.stdout, /port-knock  │ .*knock/);
  // Other tests' labs may be up at the same time: look only for this demo's lab id.
  const id = /rwg-([0-9a-f]+)-r2/.exec(result.stdout)?.[1];
  t.truthy(id, 'the demo names its lab');
  const meshId = /(rwm-[0-9a-f]+)-/.exec(result.stdout)?.[1];
  t.truthy(meshId, 'the demo names its mesh lab');
  const left = (await execa('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => l.includes(`rwg-${id ?? ''}-`) || l.includes(`${meshId ?? 'none'}-`));
  t.deepEqual(left, [], 'the demo removed its lab');
});

asRoot('with --keep the lab stays up until Ctrl-C, which removes it and exits with the story\'s status', async (t) => {
  const demo = execa(process.execPath, [DEMO, '--keep'], { reject: false, timeout: 150_000, stdin: 'ignore', buffer: false });
  let out = '';
  demo.stdout.setEncoding('utf8');
  const kept = new Promise<void>((resolve) => {
    demo.stdout.on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('the lab stays up until you press Ctrl-C')) resolve();
    });
  });
  await Promise.race([kept, demo]);
  const id = /rwg-([0-9a-f]+)-r2/.exec(out)?.[1] ?? 'none';
  const labNamespaces = async (): Promise<string[]> =>
    (await execa('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => l.includes(`rwg-${id}-`));
  t.true((await labNamespaces()).length > 0, 'the lab is still up');
  demo.kill('SIGINT');
  const result = await demo;
  t.is(result.exitCode, 0, out.slice(-2000));
  t.regex(out, /demo: every step did what it says/);
  t.deepEqual(await labNamespaces(), [], 'Ctrl-C removed the lab');
});

test('the demo refuses unknown arguments with exit 2 and explains --keep in --help', async (t) => {
  const bad = await execa(process.execPath, [DEMO, '--frobnicate'], { reject: false });
  t.is(bad.exitCode, 2);
  t.regex(bad.stderr, /unknown argument --frobnicate/);
  const help = await execa(process.execPath, [DEMO, '--help'], { reject: false });
  t.is(help.exitCode, 0);
  t.regex(help.stdout, /--keep/);
});
