/**
 * The bash completion (completions/reconfig-wg, installed for both commands), run by bash with
 * bash-completion loaded, as a shell does on Tab: it offers exactly the flags each --help
 * lists, for the daemon and for reconfig-wg's status and check, the subcommands as the first
 * word, and the choices of the flags that have them.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { execa } from 'execa';
import { KNOCK_CLI, RECONFIG_CLI } from '../scripts/lab/daemons.js';
import { BASH_COMPLETION, completeWith } from './helpers/completion.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const COMPLETION = join(root, 'completions', 'reconfig-wg');
const complete = (line: string): Promise<string[]> => completeWith(COMPLETION, line);
const withBashCompletion = existsSync(BASH_COMPLETION) ? test : test.skip;

/** Every flag an --help lists, short and long. */
async function helpFlags(cli: string, ...words: string[]): Promise<string[]> {
  const help = (await execa(process.execPath, [cli, ...words, '--help'])).stdout;
  const options = help.slice(help.indexOf('\n  Options\n'));
  const section = options.slice(0, options.indexOf('\n\n', 1));
  return [...section.matchAll(/^ {4}(?:(-\w), )? *(--[a-z][a-z-]*)/gm)].flatMap((m) => (m[1] === undefined ? [m[2]!] : [m[1], m[2]!])).sort();
}

withBashCompletion('Tab after reconfig-wg - offers exactly the flags of reconfig-wg --help', async (t) => {
  t.deepEqual(await complete('reconfig-wg -'), await helpFlags(RECONFIG_CLI));
});

withBashCompletion('Tab after reconfig-wg status - and check - offers exactly their own flags', async (t) => {
  t.deepEqual(await complete('reconfig-wg status -'), await helpFlags(RECONFIG_CLI, 'status'));
  t.deepEqual(await complete('reconfig-wg check -i wg0 -'), await helpFlags(RECONFIG_CLI, 'check'));
});

withBashCompletion('Tab after port-knock - offers exactly the flags of port-knock --help', async (t) => {
  t.deepEqual(await complete('port-knock -'), await helpFlags(KNOCK_CLI));
});

withBashCompletion('the first word completes to the subcommands, and flags with choices to their choices', async (t) => {
  t.deepEqual(await complete('reconfig-wg '), ['check', 'status']);
  t.deepEqual(await complete('reconfig-wg st'), ['status']);
  t.deepEqual(await complete('reconfig-wg --pinhole '), ['always', 'auto', 'never']);
  t.deepEqual(await complete('reconfig-wg -i wg0 --log-format j'), ['journal', 'json']);
  t.deepEqual(await complete('port-knock --log-level w'), ['warn']);
  t.deepEqual(await complete('reconfig-wg check --persist '), ['none', 'uci', 'wg-quick']);
  t.deepEqual(await complete('reconfig-wg --hook-timeout '), [], 'a number: nothing offered');
  t.deepEqual(await complete('reconfig-wg -i wg0 st'), [], 'a subcommand only as the first word');
});
