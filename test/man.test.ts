/**
 * The man pages, reconfig-wg(8) and port-knock(8), against the commands themselves: every option
 * each --help lists (the daemon's, and reconfig-wg's status and check) is documented with the
 * same letters and value, and nothing else is; the version is the package's; man renders them
 * without a warning.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { execa } from 'execa';
import { KNOCK_CLI, RECONFIG_CLI } from '../scripts/lab/daemons.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const { version, man } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; man: string[] };
const page = (name: string): string => readFileSync(join(root, 'man', `${name}.8`), 'utf8');

/** The options an --help lists, as they are written there: `-i, --interface IFACE`. */
function helpOptions(help: string): string[] {
  const options = help.slice(help.indexOf('\n  Options\n'));
  const section = options.slice(0, options.indexOf('\n\n', 1) + 1);
  return [...section.matchAll(/^ {4}((?:-\w, )? *--[a-z][a-z-]*(?: (?! )[^\n]*?)?)(?: {2,}|$)/gm)].map((m) => m[1]!.replace(/^ +/, '').trim());
}

/** A roff request's arguments: words, or "quoted" with "" for a quote inside. */
function roffArgs(text: string): string[] {
  const args: string[] = [];
  for (const match of text.matchAll(/"((?:[^"]|"")*)"|(\S+)/g)) args.push(match[1] !== undefined ? match[1].replace(/""/g, '"') : match[2]!);
  return args;
}

/** A .TP tag line as man prints it: fonts dropped, \- as -. */
function roffText(line: string): string {
  const request = /^\.(B|I|BR|BI|IR|RB|IB|RI)\s+(.*)$/.exec(line);
  const text = request === null ? line : ['B', 'I'].includes(request[1]!) ? roffArgs(request[2]!).join(' ') : roffArgs(request[2]!).join('');
  return text.replace(/\\f[BIRP]/g, '').replace(/\\-/g, '-').trim();
}

/** The tags of the .TP paragraphs in one .SH section of a page. */
function manOptions(source: string, section: string): string[] {
  const start = source.indexOf(`\n.SH ${section}\n`);
  if (start === -1) return [];
  const rest = source.slice(start + 1);
  const end = rest.indexOf('\n.SH ', 1);
  const lines = (end === -1 ? rest : rest.slice(0, end)).split('\n');
  return lines.flatMap((line, i) => (line === '.TP' && lines[i + 1] !== undefined ? [roffText(lines[i + 1]!)] : []));
}

async function help(cli: string, ...words: string[]): Promise<string> {
  return (await execa(process.execPath, [cli, ...words, '--help'])).stdout;
}

const pages = [
  { name: 'reconfig-wg', section: 'OPTIONS', cli: RECONFIG_CLI, words: [] },
  { name: 'reconfig-wg', section: 'STATUS', cli: RECONFIG_CLI, words: ['status'] },
  { name: 'reconfig-wg', section: 'CHECK', cli: RECONFIG_CLI, words: ['check'] },
  { name: 'port-knock', section: 'OPTIONS', cli: KNOCK_CLI, words: [] },
] as const;

for (const { name, section, cli, words } of pages) {
  test(`${name}(8) ${section} documents exactly the options of ${[name, ...words].join(' ')} --help`, async (t) => {
    const listed = helpOptions(await help(cli, ...words));
    t.true(listed.length >= 4, `the help lists its options: ${listed.join(' | ')}`);
    t.deepEqual(manOptions(page(name), section), listed);
  });
}

test('the readers take the options from .TP tags and from --help lines as they are written', (t) => {
  const source = '\n.SH OPTIONS\n.TP\n.BR \\-i ", " \\-\\-interface " \\fIIFACE\\fR"\nx\n.TP\n.B \\-\\-once\ny\n.TP\n.BI \\-\\-hook " ""CMD ARGS"""\nz\n.SH NEXT\n.TP\n.B \\-\\-other\n';
  t.deepEqual(manOptions(source, 'OPTIONS'), ['-i, --interface IFACE', '--once', '--hook "CMD ARGS"']);
  const helpText = '  Usage\n    $ x\n\n  Options\n    -i, --interface IFACE   which\n        --once              once\n        --reconfig-pid-file PATH\n                            long\n\n  Exit status\n';
  t.deepEqual(helpOptions(helpText), ['-i, --interface IFACE', '--once', '--reconfig-pid-file PATH']);
});

test('both pages carry the package version, are in package.json "man", and render without a warning', async (t) => {
  for (const name of ['reconfig-wg', 'port-knock']) {
    t.regex(page(name), new RegExp(`^\\.TH ${name.toUpperCase()} 8 "[^"]+" "reconfig-wg ${version.replace(/\./g, '\\.')}"`, 'm'));
    t.true(man.includes(`./man/${name}.8`), `package.json man lists ${name}.8`);
    const rendered = await execa('man', ['--warnings', '-l', join(root, 'man', `${name}.8`)], { env: { MANWIDTH: '80', MANPAGER: 'cat', PAGER: 'cat' } });
    t.is(rendered.stderr, '', `${name}: no warnings`);
    t.regex(rendered.stdout, /^NAME\n/m);
    t.regex(rendered.stdout, /--version/);
  }
});
