/**
 * Command-line flags → values: meow parses them, and renders the help, on top of a strict
 * check of our own. meow (yargs-parser) takes what it does not know as a value or a new flag
 * (`-i --once` gives an empty interface, `-iwg0` the flags -i, -w, -g and -0, `--once=yes`
 * a string), so every word is checked first: an unknown flag, a flag missing its value, a
 * value given to a switch or a value outside a flag's choices is refused with one sentence
 * that names the flag and the fix. What passes is handed to meow in one unambiguous form
 * (`--interface=wg0`, `--once`, then `--` and the other words), so meow's values are the
 * ones the check saw. Returns a Result and never throws.
 *
 * Long flags are the kebab-case of the spec's keys (`dryRun` → `--dry-run`). A value follows
 * its flag as the next word or after `=` (`-p 19000`, `--port=19000`, `-p19000`); a word that
 * starts with `-` is never taken as a value, so `-i --once` is a missing value, not an
 * interface called `--once` (write `--flag=-x` for a value that starts with a dash). `--`
 * ends the flags. Words that are not flags are returned in `input`, in order, so a caller can
 * dispatch a leading subcommand word.
 */
import meow, { type AnyFlags } from 'meow';
import { fail, ok, type Result } from './result.js';

export interface FlagSpec {
  readonly type: 'string' | 'boolean';
  readonly shortFlag?: string;
  /** the values a string flag accepts */
  readonly choices?: readonly string[];
  /** what the value is, for messages: `--interface needs a value (IFACE)` */
  readonly value?: string;
}

export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

export type FlagValues<S extends FlagSpecs> = {
  readonly [K in keyof S]?: S[K]['type'] extends 'boolean' ? boolean : string;
};

export interface ParsedArgs<S extends FlagSpecs> {
  readonly flags: FlagValues<S>;
  readonly input: readonly string[];
  /** the help text as meow renders it (indented by two, one empty line before) */
  readonly help: string;
}

export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function listChoices(choices: readonly string[]): string {
  return choices.length <= 1 ? choices.join('') : `${choices.slice(0, -1).join(', ')} or ${choices.at(-1) ?? ''}`;
}

/** The flags after the strict check, each in one form meow cannot misread. */
export function strictArgv(specs: FlagSpecs, argv: readonly string[]): Result<string[]> {
  const byLong = new Map<string, [string, FlagSpec]>();
  const byShort = new Map<string, [string, FlagSpec]>();
  for (const [key, spec] of Object.entries(specs)) {
    byLong.set(kebab(key), [key, spec]);
    if (spec.shortFlag !== undefined) byShort.set(spec.shortFlag, [key, spec]);
  }
  const canonical: string[] = [];
  const input: string[] = [];

  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] ?? '';
    if (word === '--') {
      input.push(...argv.slice(i + 1));
      break;
    }
    if (!word.startsWith('-') || word === '-') {
      input.push(word);
      continue;
    }
    let name: string;
    let entry: [string, FlagSpec] | undefined;
    let attached: string | undefined;
    if (word.startsWith('--')) {
      const eq = word.indexOf('=');
      name = eq === -1 ? word : word.slice(0, eq);
      attached = eq === -1 ? undefined : word.slice(eq + 1);
      entry = byLong.get(name.slice(2));
    } else {
      const long = word.slice(1).split('=')[0] ?? '';
      if (long.length > 1 && byLong.has(long)) return fail(`unknown flag ${word.split('=')[0] ?? word}; long flags take two dashes: -${word}`);
      name = word.slice(0, 2);
      entry = byShort.get(word.slice(1, 2));
      if (word.length > 2) attached = word[2] === '=' ? word.slice(3) : word.slice(2);
    }
    if (entry === undefined) {
      const near = word.startsWith('--') ? nearest(name.slice(2), [...byLong.keys()]) : undefined;
      return fail(near === undefined ? `unknown flag ${name}` : `unknown flag ${name}; did you mean --${near}?`);
    }
    const [key, spec] = entry;
    const long = `--${kebab(key)}`;
    const shown = spec.shortFlag === undefined || name === long ? long : `${name} (${long})`;
    if (spec.type === 'boolean') {
      if (attached !== undefined) {
        return fail(word.startsWith('--') ? `${long} takes no value; write ${long} alone` : `${name} takes no value and does not combine with other letters; write ${name} alone`);
      }
      canonical.push(long);
      continue;
    }
    let value = attached;
    const what = spec.choices === undefined ? (spec.value ?? 'a value') : listChoices(spec.choices);
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('-') && next !== '-')) {
        return fail(`${shown} needs a value: ${what}${next === undefined ? '' : ` (${next} is a flag; write ${long}=${next} for a value that starts with -)`}`);
      }
      value = next;
      i++;
    }
    if (value === '') return fail(`${shown} needs a value: ${what}`);
    if (spec.choices !== undefined && !spec.choices.includes(value)) {
      return fail(`${shown} ${value} is not one of ${listChoices(spec.choices)}`);
    }
    canonical.push(`${long}=${value}`);
  }
  return ok([...canonical, '--', ...input]);
}

/** `noInject` → meow's `inject`: yargs-parser reads `--no-inject` as `inject` set to false. */
const negated = (key: string): string | undefined => (/^no[A-Z]/.test(key) ? `${key[2]!.toLowerCase()}${key.slice(3)}` : undefined);

function meowFlags(specs: FlagSpecs): AnyFlags {
  const flags: AnyFlags = {};
  for (const [key, spec] of Object.entries(specs)) {
    // a string flag may come twice (a unit's own flags, then the administrator's): the last wins
    flags[negated(key) ?? key] = spec.type === 'string' ? { type: 'string', isMultiple: true } : { type: 'boolean' };
  }
  return flags;
}

/** Runs `fn` with process.title held as it is: read as before, set to no effect. */
function withoutTitleChanges<T>(fn: () => T): T {
  const descriptor = Object.getOwnPropertyDescriptor(process, 'title');
  if (descriptor?.configurable !== true) return fn();
  const title = process.title;
  Object.defineProperty(process, 'title', { configurable: true, enumerable: descriptor.enumerable ?? true, get: () => title, set: () => undefined });
  try {
    return fn();
  } finally {
    Object.defineProperty(process, 'title', descriptor);
  }
}

/**
 * Strictly checked, then parsed by meow, which also renders `help`. meow sets process.title,
 * and setting it at all (even to what it was) overwrites the command line in /proc, which the
 * pid-file identity check reads (node running our cli file): the setter is held off meanwhile.
 */
export function parseArgs<S extends FlagSpecs>(specs: S, argv: readonly string[], help = ''): Result<ParsedArgs<S>> {
  const checked = strictArgv(specs, argv);
  if (!checked.ok) return checked;
  const cli = withoutTitleChanges(() => meow(help, {
    importMeta: import.meta,
    argv: checked.value,
    // no package.json lookup: the commands print their own name and version
    pkg: {},
    description: false,
    autoHelp: false,
    autoVersion: false,
    booleanDefault: undefined,
    // the strict check above has refused unknown flags already, in our words
    allowUnknownFlags: true,
    flags: meowFlags(specs),
  }));
  const parsed = cli.flags as Record<string, unknown>;
  const flags: Record<string, string | boolean> = {};
  for (const [key, spec] of Object.entries(specs)) {
    const inner = negated(key);
    const value = parsed[inner ?? key];
    if (spec.type === 'string' && Array.isArray(value) && value.length > 0) flags[key] = String(value.at(-1));
    else if (spec.type === 'boolean' && typeof value === 'boolean') {
      if (inner === undefined) flags[key] = value;
      else if (!value) flags[key] = true;
    }
  }
  return ok({ flags: flags as FlagValues<S>, input: cli.input.map(String), help: cli.help });
}

/** The flag within two edits of `name`, if exactly one is that close (a typo, not a guess). */
function nearest(name: string, flags: readonly string[]): string | undefined {
  const close = flags.filter((flag) => editDistance(name, flag) <= 2);
  return close.length === 1 ? close[0] : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
