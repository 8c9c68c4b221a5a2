/**
 * The flag parser both commands share: meow under a strict check, every refusal one sentence
 * that names the flag and the fix, and what meow parses exactly what the check let through.
 */
import { readFileSync } from 'node:fs';
import test from 'ava';
import fc from 'fast-check';
import { parseArgs } from '../src/common/args.js';

const SPECS = {
  interface: { type: 'string', shortFlag: 'i', value: 'an interface name' },
  logLevel: { type: 'string', choices: ['info', 'debug'] },
  once: { type: 'boolean' },
  kill: { type: 'boolean', shortFlag: 'k' },
  noInject: { type: 'boolean' },
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

test('--no-inject is its own switch (yargs-parser would read it as inject=false); a later string flag wins', (t) => {
  const result = parse('--no-inject', '-i', 'wg0', '--interface', 'wg1');
  t.deepEqual(result.ok ? result.value.flags : undefined, { noInject: true, interface: 'wg1' });
  const none = parse();
  t.deepEqual(none.ok ? none.value.flags : undefined, {}, 'a flag not given is absent, not false');
});

test('the help meow renders is the text, indented by two', (t) => {
  const result = parseArgs(SPECS, ['--once'], '\n    Usage\n      $ x [--once]\n');
  t.is(result.ok ? result.value.help : undefined, '\n  Usage\n    $ x [--once]\n');
});

// Any mix of the accepted forms: meow's values are the model's (the last of a string flag wins;
// a switch given is true), however the words are written.
const word = fc.oneof(
  fc.constantFrom('wg0', 'eth-1', '-x', 'a b', '19000', '').map((value) => ({ key: 'interface' as const, value, forms: value.startsWith('-') || value === '' ? [[`--interface=${value}`]] : [['-i', value], [`--interface=${value}`], [`-i${value}`], ['--interface', value], [`-i=${value}`]] })),
  fc.constantFrom('info', 'debug').map((value) => ({ key: 'logLevel' as const, value, forms: [['--log-level', value], [`--log-level=${value}`]] })),
  fc.constantFrom('once', 'kill', 'noInject').map((key) => ({ key, value: true, forms: key === 'kill' ? [['-k'], ['--kill']] : key === 'once' ? [['--once']] : [['--no-inject']] })),
);

test('whatever the check lets through, meow parses into the values it saw', (t) => {
  fc.assert(
    fc.property(fc.array(fc.tuple(word, fc.nat()), { maxLength: 8 }), fc.array(fc.constantFrom('status', 'x', 'wg0'), { maxLength: 2 }), (words, rest) => {
      const argv: string[] = [];
      const expected: Record<string, string | boolean> = {};
      for (const [{ key, value, forms }, pick] of words) {
        if (key === 'interface' && value === '') continue; // an empty value is refused
        argv.push(...forms[pick % forms.length]!);
        expected[key] = value;
      }
      const result = parse(...argv, ...(rest.length > 0 ? ['--', ...rest] : []));
      if (!result.ok) return false;
      return JSON.stringify(Object.entries(result.value.flags).sort()) === JSON.stringify(Object.entries(expected).sort()) && JSON.stringify(result.value.input) === JSON.stringify(rest);
    }),
    { numRuns: 300 },
  );
  t.pass();
});

test('parsing leaves the process title and the command line in /proc as they were (the pid-file identity reads them)', (t) => {
  const cmdline = (): string => readFileSync('/proc/self/cmdline', 'utf8');
  const before = cmdline();
  const title = process.title;
  t.true(parse('--once').ok);
  t.is(cmdline(), before);
  t.is(process.title, title);
});
