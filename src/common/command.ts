/**
 * A command given as one string (port-knock's -c, reconfig-wg's --hook): split once into argv
 * the way sh splits words, then fill placeholders per argument each time it runs. No shell
 * ever runs, so nothing an outsider controls (a knock's source, a peer's endpoint) is re-parsed.
 *
 * Whatever we accept splits exactly as sh would split it. What sh would treat as an operator,
 * a redirection, an expansion, a glob or a comment is refused instead of silently passed as
 * text, so the user is never surprised by a `;` that became part of an argument.
 */
import { fail, ok, type Result } from './result.js';

const BLANK = new Set([' ', '\t', '\n']);
/** Unquoted, these mean something to sh that we do not do. */
const SHELL_SPECIAL = new Set([';', '&', '|', '<', '>', '(', ')', '$', '`', '*', '?', '[']);
/** Special to sh only at the start of a word: tilde expansion and comments. */
const WORD_START_SPECIAL = new Set(['~', '#']);
/** Inside double quotes a backslash escapes only these (POSIX 2.2.3). */
const DOUBLE_QUOTE_ESCAPES = new Set(['$', '`', '"', '\\', '\n']);

const NO_SHELL = 'the command runs without a shell; quote it, or put shell syntax in a script and run that';

export function parseCommand(text: string): Result<string[]> {
  const argv: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  const column = (at: number): string => `at character ${at + 1}`;

  while (i < text.length) {
    const c = text[i] as string;
    if (BLANK.has(c)) {
      if (inWord) argv.push(word);
      word = '';
      inWord = false;
      i++;
      continue;
    }
    if (c === '\\') {
      const next = text[i + 1];
      if (next === undefined) return fail(`ends with a lone backslash; escape it as \\\\`);
      // backslash-newline is a line continuation: it disappears and starts no word
      if (next !== '\n') {
        word += next;
        inWord = true;
      }
      i += 2;
      continue;
    }
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) return fail(`has an unbalanced ' ${column(i)}; close it, or escape it as \\'`);
      word += text.slice(i + 1, end);
      inWord = true;
      i = end + 1;
      continue;
    }
    if (c === '"') {
      const quoted = readDoubleQuoted(text, i);
      if (!quoted.ok) return quoted;
      word += quoted.value.text;
      inWord = true;
      i = quoted.value.end;
      continue;
    }
    if (SHELL_SPECIAL.has(c) || (!inWord && WORD_START_SPECIAL.has(c))) {
      return fail(`has an unquoted '${c}' ${column(i)}: ${NO_SHELL}`);
    }
    word += c;
    inWord = true;
    i++;
  }
  if (inWord) argv.push(word);
  if (argv.length === 0) return fail('is empty; give the program to run, e.g. "logger {src}"');
  return ok(argv);
}

/** Reads "…" starting at the opening quote; returns the text and the index after the closing one. */
function readDoubleQuoted(text: string, open: number): Result<{ text: string; end: number }> {
  let out = '';
  let i = open + 1;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '"') return ok({ text: out, end: i + 1 });
    if (c === '\\' && DOUBLE_QUOTE_ESCAPES.has(text[i + 1] ?? '')) {
      const next = text[i + 1] as string;
      if (next !== '\n') out += next;
      i += 2;
      continue;
    }
    if (c === '$' || c === '`') {
      return fail(`has '${c}' inside double quotes at character ${i + 1}: ${NO_SHELL} (single quotes keep it literal)`);
    }
    out += c;
    i++;
  }
  return fail(`has an unbalanced " at character ${open + 1}; close it, or escape it as \\"`);
}

/**
 * Fills `{name}` for every name in `values`, in each argument. One pass per argument: a value
 * is never split, never re-scanned for placeholders, and never seen by a shell. Other braces
 * (and unknown names) stay as they are.
 */
export function fillPlaceholders(argv: readonly string[], values: Readonly<Record<string, string>>): string[] {
  const names = Object.keys(values).map((name) => name.replace(/[^A-Za-z0-9_]/g, ''));
  if (names.length === 0) return [...argv];
  const pattern = new RegExp(`\\{(${names.join('|')})\\}`, 'g');
  return argv.map((arg) => arg.replace(pattern, (_match, name: string) => values[name] ?? ''));
}
