/**
 * A STAND-IN for OpenWrt's `uci` command, which is not packaged for Debian: just enough of it
 * for the init-script tests. It reads UCI's file format from the config directory
 * (`-c DIR`, default /etc/config) and answers `export PACKAGE` (what /lib/functions.sh's
 * config_load evaluates) and `get PACKAGE.SECTION.OPTION`. Nothing else.
 *
 * The file format: `package NAME`, `config TYPE ['NAME']`, `option NAME 'VALUE'`,
 * `list NAME 'VALUE'`; words unquoted, in '…' or in "…" (backslash escapes outside single
 * quotes); `#` starts a comment.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface UciSection {
  readonly type: string;
  readonly name: string | undefined;
  readonly options: Map<string, string | string[]>;
}

export function tokenize(line: string): string[] | string {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i]!)) i++;
    if (i >= line.length || line[i] === '#') break;
    let word = '';
    while (i < line.length && !/\s/.test(line[i]!)) {
      const c = line[i]!;
      if (c === "'") {
        const end = line.indexOf("'", i + 1);
        if (end === -1) return 'unterminated quote';
        word += line.slice(i + 1, end);
        i = end + 1;
      } else if (c === '"') {
        i++;
        while (i < line.length && line[i] !== '"') {
          if (line[i] === '\\' && i + 1 < line.length) i++;
          word += line[i];
          i++;
        }
        if (i >= line.length) return 'unterminated quote';
        i++;
      } else if (c === '\\' && i + 1 < line.length) {
        word += line[i + 1];
        i += 2;
      } else {
        word += c;
        i++;
      }
    }
    words.push(word);
  }
  return words;
}

export function parseUci(text: string): UciSection[] | string {
  const sections: UciSection[] = [];
  const lines = text.split('\n');
  for (const [index, line] of lines.entries()) {
    const words = tokenize(line);
    if (typeof words === 'string') return `${words} at line ${index + 1}`;
    if (words.length === 0) continue;
    const [keyword, first, second] = words;
    const current = sections.at(-1);
    if (keyword === 'package') continue;
    if (keyword === 'config' && first !== undefined && words.length <= 3) {
      sections.push({ type: first, name: second, options: new Map() });
    } else if ((keyword === 'option' || keyword === 'list') && first !== undefined && second !== undefined && words.length === 3 && current !== undefined) {
      if (keyword === 'option') current.options.set(first, second);
      else {
        const list = current.options.get(first);
        current.options.set(first, Array.isArray(list) ? [...list, second] : [second]);
      }
    } else {
      return `invalid line ${index + 1}: ${line.trim()}`;
    }
  }
  return sections;
}

function quote(value: string): string {
  return `'${value.replace(/'/g, "'\\''")}'`;
}

/** Names unnamed sections the way `uci -n` does: cfg, then a number. */
export function sectionName(section: UciSection, index: number): string {
  return section.name ?? `cfg${(index + 1).toString(16).padStart(6, '0')}`;
}

export function exportPackage(name: string, sections: readonly UciSection[]): string {
  const out = [`package ${name}`, ''];
  sections.forEach((section, index) => {
    out.push(`config ${section.type} ${quote(sectionName(section, index))}`);
    for (const [option, value] of section.options) {
      if (Array.isArray(value)) for (const item of value) out.push(`\tlist ${option} ${quote(item)}`);
      else out.push(`\toption ${option} ${quote(value as string)}`);
    }
    out.push('');
  });
  return `${out.join('\n')}\n`;
}

function main(argv: string[]): number {
  let dir = '/etc/config';
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-c') dir = argv[++i] ?? dir;
    else if (arg === '-P') i++;
    else if (arg === '-S' || arg === '-n' || arg === '-q') continue;
    else words.push(arg);
  }
  const [verb, target] = words;
  if ((verb !== 'export' && verb !== 'get') || target === undefined) {
    process.stderr.write('uci (stand-in): only "export PACKAGE" and "get PACKAGE.SECTION.OPTION" are supported\n');
    return 1;
  }
  const [pkg = '', sectionWanted, optionWanted] = target.split('.');
  let text: string;
  try {
    text = readFileSync(join(dir, pkg), 'utf8');
  } catch {
    process.stderr.write('uci: Entry not found\n');
    return 1;
  }
  const sections = parseUci(text);
  if (typeof sections === 'string') {
    process.stderr.write(`uci: Parse error (${sections})\n`);
    return 1;
  }
  if (verb === 'export') {
    process.stdout.write(exportPackage(pkg, sections));
    return 0;
  }
  const index = sections.findIndex((s, i) => sectionName(s, i) === sectionWanted);
  const section = sections[index];
  const value = section === undefined ? undefined : optionWanted === undefined ? section.type : section.options.get(optionWanted);
  if (value === undefined) {
    process.stderr.write('uci: Entry not found\n');
    return 1;
  }
  process.stdout.write(`${Array.isArray(value) ? value.join(' ') : value}\n`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, '/'))) {
  process.exitCode = main(process.argv.slice(2));
}
