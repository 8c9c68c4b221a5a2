/**
 * The -c command: split like sh splits words, run by no shell, placeholders filled per word.
 */
import test from 'ava';
import { parseCommand, substitute, type KnockValues } from '../src/knock/command.js';

const values: KnockValues = { src: '192.0.2.10', port: '19003', proto: 'udp', family: '4', ttl: '1' };

function argv(text: string): string[] {
  const parsed = parseCommand(text);
  if (!parsed.ok) throw new Error(`expected ${JSON.stringify(text)} to parse: ${parsed.reason}`);
  return parsed.value;
}

function refusal(text: string): string {
  const parsed = parseCommand(text);
  if (parsed.ok) throw new Error(`expected ${JSON.stringify(text)} to be refused, got ${JSON.stringify(parsed.value)}`);
  return parsed.reason;
}

test('words are split on blanks, as sh does', (t) => {
  t.deepEqual(argv('logger -t knock  from\t{src}\n'), ['logger', '-t', 'knock', 'from', '{src}']);
});

test('single quotes keep everything literal, including backslashes and double quotes', (t) => {
  t.deepEqual(argv(`echo 'a b' 'c\\d' '"e"' ''`), ['echo', 'a b', 'c\\d', '"e"', '']);
});

test('double quotes keep blanks, and a backslash escapes only $ ` " \\ and newline inside them', (t) => {
  t.deepEqual(argv('echo "a  b" "x\\"y" "back\\\\slash" "keep\\n" "\\$"'), ['echo', 'a  b', 'x"y', 'back\\slash', 'keep\\n', '$']);
});

test('outside quotes a backslash escapes the next character; backslash-newline joins lines', (t) => {
  t.deepEqual(argv('echo a\\ b \\; \\\'q \\\n c'), ['echo', 'a b', ';', "'q", 'c']);
});

test('quotes join with the text around them into one word', (t) => {
  t.deepEqual(argv(`run --name='two words'"!"x`), ['run', '--name=two words!x']);
});

test('unbalanced quotes and a trailing backslash are refused, naming the problem', (t) => {
  t.regex(refusal(`echo 'open`), /unbalanced ' at character 6/);
  t.regex(refusal('echo "open'), /unbalanced " at character 6/);
  t.regex(refusal('echo x\\'), /lone backslash/);
});

test('an empty command is refused', (t) => {
  t.regex(refusal(''), /is empty/);
  t.regex(refusal('  \t '), /is empty/);
});

test('shell operators, expansions and globs are refused rather than passed on as text', (t) => {
  for (const text of ['a; b', 'a && b', 'a | b', 'a > f', 'a < f', '(a)', 'echo $HOME', 'echo `id`', 'echo $(id)', 'rm *', 'ls ?', 'ls [ab]', 'cd ~', 'a #comment']) {
    t.regex(refusal(text), /without a shell/, text);
  }
  t.regex(refusal('echo "$HOME"'), /inside double quotes/);
  t.regex(refusal('echo "`id`"'), /inside double quotes/);
});

test('quoted or escaped, shell characters are ordinary text', (t) => {
  t.deepEqual(argv(`echo ';' '$(id)' "a|b" \\$HOME a#b '~'`), ['echo', ';', '$(id)', 'a|b', '$HOME', 'a#b', '~']);
});

test('placeholders are filled in every word, also inside a word and more than once', (t) => {
  const template = argv('notify --from={src}:{port} {proto}/IPv{family} ttl={ttl} {src}{src}');
  t.deepEqual(substitute(template, values), ['notify', '--from=192.0.2.10:19003', 'udp/IPv4', 'ttl=1', '192.0.2.10192.0.2.10']);
});

test('unknown placeholders and other braces stay as they are', (t) => {
  t.deepEqual(substitute(argv(`awk '{print}' {source} {SRC}`), values), ['awk', '{print}', '{source}', '{SRC}']);
});

test('a hostile value stays one argument, verbatim, and is never re-scanned', (t) => {
  const template = argv('record {src} --port={port}');
  for (const hostile of ['; rm -rf /', '$(reboot)', '`reboot`', `'" \\`, 'a b\tc\nd', '{port}', '-rf --no-preserve-root /', '']) {
    const filled = substitute(template, { ...values, src: hostile });
    t.deepEqual(filled, ['record', hostile, '--port=19003'], JSON.stringify(hostile));
  }
});

test('a template is not changed by filling it', (t) => {
  const template = argv('echo {src}');
  substitute(template, values);
  t.deepEqual(template, ['echo', '{src}']);
});
