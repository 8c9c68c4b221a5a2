/**
 * The flag parser both commands share: strict, pure, and every refusal one sentence that
 * names the flag and the fix.
 */
import test from 'ava';
import { parseArgs } from '../src/common/args.js';

const SPECS = {
  interface: { type: 'string', shortFlag: 'i', value: 'an interface name' },
  logLevel: { type: 'string', choices: ['info', 'debug'] },
  once: { type: 'boolean' },
  kill: { type: 'boolean', shortFlag: 'k' },
} as const;

const parse = (...argv: string[]) => parseArgs(SPECS, argv);

test('values follow their flag as the next word, after = or attached to a short flag', (t) => {
  for (const argv of [['-i', 'wg0'], ['--interface', 'wg0'], ['--interface=wg0'], ['-iwg0'], ['-i=wg0']]) {
    const result = parse(...argv);
    t.true(result.ok, argv.join(' '));
    if (result.ok) t.is(result.value.flags.interface, 'wg0');
  }
  const both = parse('--once', '-k', '--log-level', 'debug');
  t.deepEqual(both.ok ? both.value.flags : undefined, { once: true, kill: true, logLevel: 'debug' });
});

test('a leading word is passed through in input, for a subcommand to take; -- ends the flags', (t) => {
  const result = parse('status', '-i', 'wg0');
  t.deepEqual(result.ok ? result.value.input : undefined, ['status']);
  const dashed = parse('--', '--once');
  t.deepEqual(dashed.ok ? [dashed.value.input, dashed.value.flags] : undefined, [['--once'], {}]);
});

test('a value may start with a dash only after =', (t) => {
  const result = parse('--interface=-x');
  t.is(result.ok ? result.value.flags.interface : undefined, '-x');
});

const refusals: [string[], string][] = [
  [['--bogus'], 'unknown flag --bogus'],
  [['--interfce', 'wg0'], 'unknown flag --interfce; did you mean --interface?'],
  [['--log-levl', 'info'], 'unknown flag --log-levl; did you mean --log-level?'],
  [['-x'], 'unknown flag -x'],
  [['-interface', 'wg0'], 'unknown flag -interface; long flags take two dashes: --interface'],
  [['-i'], '-i (--interface) needs a value: an interface name'],
  [['--interface'], '--interface needs a value: an interface name'],
  [['--interface='], '--interface needs a value: an interface name'],
  [['-i', '--once'], '-i (--interface) needs a value: an interface name (--once is a flag; write --interface=--once for a value that starts with -)'],
  [['--once=yes'], '--once takes no value; write --once alone'],
  [['-kx'], '-k takes no value and does not combine with other letters; write -k alone'],
  [['--log-level', 'loud'], '--log-level loud is not one of info or debug'],
  [['--log-level'], '--log-level needs a value: info or debug'],
];

for (const [argv, reason] of refusals) {
  test(`${argv.join(' ')} is refused: ${reason}`, (t) => {
    t.deepEqual(parse(...argv), { ok: false, reason });
  });
}
