#!/usr/bin/env node
/**
 * STAND-IN for OpenWrt's `uci`, which Debian does not package. Tests only.
 *
 * It keeps UCI's file format (`config TYPE 'NAME'`, tab-indented `option`/`list` lines) in the
 * config directory given by -c, which it requires, so it can never touch /etc/config. It does
 * what reconfig-wg and the tests call, with uci's semantics:
 *   uci -c DIR [-q] show [PKG[.SECTION[.OPTION]]]   anonymous sections as @TYPE[INDEX]
 *   uci -c DIR [-q] get PKG.SECTION[.OPTION]
 *   uci -c DIR [-q] set PKG.SECTION.OPTION=VALUE      (or PKG.SECTION=TYPE for a named section)
 *   uci -c DIR [-q] commit [PKG]
 * Like the real one, `set` only records the change (here in DIR/.uci-standin-delta/PKG); show
 * and get see it; only `commit` writes the config file, replacing it atomically. Comments and
 * layout are not kept across a commit: the real uci rewrites the file the same way.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../src/common/atomic.js';
import { parseUci, type UciSection } from './procd-standin/uci.js';

type Section = UciSection;

class UciError extends Error {}

/** UCI's file format, read as the init-script stand-in reads it (one parser for both). */
function parse(text: string): Section[] {
  const sections = parseUci(text);
  if (typeof sections === 'string') throw new UciError(`Parse error (${sections})`);
  return sections;
}

function quote(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`;
}

function serialise(sections: readonly Section[]): string {
  let out = '';
  for (const section of sections) {
    out += `\nconfig ${section.type}${section.name === undefined ? '' : ` ${quote(section.name)}`}\n`;
    for (const [key, value] of section.options) {
      if (Array.isArray(value)) for (const item of value) out += `\tlist ${key} ${quote(item)}\n`;
      else out += `\toption ${key} ${quote(value)}\n`;
    }
  }
  return out;
}

class Store {
  constructor(private readonly dir: string) {}

  private deltaFile(pkg: string): string {
    return join(this.dir, '.uci-standin-delta', pkg);
  }

  private deltas(pkg: string): [string, string][] {
    const file = this.deltaFile(pkg);
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as [string, string]);
  }

  /** the package as the file has it, with pending changes applied */
  load(pkg: string): Section[] {
    const file = join(this.dir, pkg);
    if (!existsSync(file)) throw new UciError('Entry not found');
    const sections = parse(readFileSync(file, 'utf8'));
    for (const [path, value] of this.deltas(pkg)) apply(sections, path, value);
    return sections;
  }

  packages(): string[] {
    return readdirSync(this.dir).filter((name) => !name.startsWith('.')).sort();
  }

  record(pkg: string, path: string, value: string): void {
    apply(this.load(pkg), path, value); // refuses what cannot apply, as uci does at set time
    mkdirSync(join(this.dir, '.uci-standin-delta'), { recursive: true });
    writeFileSync(this.deltaFile(pkg), `${JSON.stringify([path, value])}\n`, { flag: 'a' });
  }

  commit(pkg: string): void {
    if (this.deltas(pkg).length === 0) return;
    writeFileAtomic(join(this.dir, pkg), serialise(this.load(pkg)));
    rmSync(this.deltaFile(pkg), { force: true });
  }
}

/** Finds `ref` (a name, or @type[index] with negative indices from the end). */
function findSection(sections: Section[], ref: string): Section | undefined {
  const anonymous = /^@([^[\]]+)\[(-?\d+)\]$/.exec(ref);
  if (anonymous === null) return sections.find((s) => s.name === ref);
  const ofType = sections.filter((s) => s.type === anonymous[1]);
  const index = Number(anonymous[2]);
  return ofType[index < 0 ? ofType.length + index : index];
}

function apply(sections: Section[], path: string, value: string): void {
  const [ref, option, ...rest] = path.split('.');
  if (ref === undefined || rest.length > 0) throw new UciError('Invalid argument');
  if (option === undefined) {
    const existing = findSection(sections, ref);
    if (existing !== undefined) sections[sections.indexOf(existing)] = { ...existing, type: value };
    else if (ref.startsWith('@')) throw new UciError('Invalid argument');
    else sections.push({ type: value, name: ref, options: new Map() });
    return;
  }
  const section = findSection(sections, ref);
  if (section === undefined) throw new UciError('Invalid argument');
  section.options.set(option, value);
}

function refOf(sections: readonly Section[], section: Section): string {
  if (section.name !== undefined) return section.name;
  const index = sections.filter((s) => s.type === section.type).indexOf(section);
  return `@${section.type}[${index}]`;
}

function showValue(value: string | string[]): string {
  return Array.isArray(value) ? value.map(quote).join(' ') : quote(value);
}

function show(store: Store, what: string | undefined): string {
  const [pkg, ref, option] = (what ?? '').split('.');
  const lines: string[] = [];
  for (const name of pkg ? [pkg] : store.packages()) {
    const sections = store.load(name);
    for (const section of sections) {
      const sref = refOf(sections, section);
      if (ref !== undefined && findSection(sections, ref) !== section) continue;
      if (option === undefined) lines.push(`${name}.${sref}=${section.type}`);
      for (const [key, value] of section.options) {
        if (option === undefined || option === key) lines.push(`${name}.${sref}.${key}=${showValue(value)}`);
      }
    }
  }
  if (ref !== undefined && lines.length === 0) throw new UciError('Entry not found');
  return lines.map((l) => `${l}\n`).join('');
}

function get(store: Store, path: string): string {
  const [pkg, ref, option] = path.split('.');
  if (pkg === undefined || ref === undefined) throw new UciError('Invalid argument');
  const sections = store.load(pkg);
  const section = findSection(sections, ref);
  if (section === undefined) throw new UciError('Entry not found');
  if (option === undefined) return `${section.type}\n`;
  const value = section.options.get(option);
  if (value === undefined) throw new UciError('Entry not found');
  return `${Array.isArray(value) ? value.join(' ') : value}\n`;
}

function main(argv: string[]): number {
  let dir: string | undefined;
  let quiet = false;
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '-c') dir = argv[++i];
    else if (arg === '-q') quiet = true;
    else args.push(arg);
  }
  const fail = (message: string): number => {
    if (!quiet) process.stderr.write(`uci: ${message}\n`);
    return 1;
  };
  if (dir === undefined) return fail('this stand-in needs -c CONFDIR (it never touches /etc/config)');
  const store = new Store(dir);
  const [command, target] = args;
  try {
    switch (command) {
      case 'show':
        process.stdout.write(show(store, target));
        return 0;
      case 'get':
        if (target === undefined) return fail('Invalid argument');
        process.stdout.write(get(store, target));
        return 0;
      case 'set': {
        const equals = target?.indexOf('=') ?? -1;
        if (target === undefined || equals < 0) return fail('Invalid argument');
        const path = target.slice(0, equals);
        const dot = path.indexOf('.');
        if (dot < 0) return fail('Invalid argument');
        store.record(path.slice(0, dot), path.slice(dot + 1), target.slice(equals + 1));
        return 0;
      }
      case 'commit':
        for (const pkg of target === undefined ? store.packages() : [target]) store.commit(pkg);
        return 0;
      default:
        return fail(`this stand-in does not do '${command ?? ''}' (show, get, set and commit only)`);
    }
  } catch (error) {
    if (error instanceof UciError) return fail(error.message);
    throw error;
  }
}

process.exitCode = main(process.argv.slice(2));
