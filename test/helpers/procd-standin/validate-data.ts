/**
 * A STAND-IN for OpenWrt's /sbin/validate_data (procd), for tests only: just enough of it for
 * the init scripts' `uci_load_validate`. It reads one section of a UCI package (from
 * $UCI_CONFIG_DIR, as the uci stand-in does) and checks each `name:type[:default]` against
 * its datatype. On stdout: one shell assignment per option (the value, or its default; empty
 * when invalid), for the caller to eval. On stderr: one line per invalid option, worded as
 * validate_data words it (`PACKAGE.SECTION.OPTION=VALUE validates as TYPE with false`).
 * Exit status 1 when any option is invalid.
 *
 * Datatypes: bool, string, port, uinteger, ufloat, range(MIN,MAX), and or(...) of those or of
 * quoted literals.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseUci, sectionName } from './uci.js';

/** Splits `a,b("x",c),d` at the commas outside parentheses and quotes. */
function splitArgs(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quoted = false;
  let current = '';
  for (const c of text) {
    if (c === '"') quoted = !quoted;
    if (!quoted && c === '(') depth++;
    if (!quoted && c === ')') depth--;
    if (!quoted && depth === 0 && c === ',') {
      parts.push(current.trim());
      current = '';
    } else current += c;
  }
  if (current.trim() !== '') parts.push(current.trim());
  return parts;
}

export function validates(type: string, value: string): boolean {
  if (type.startsWith('"') && type.endsWith('"')) return value === type.slice(1, -1);
  const call = /^(\w+)\((.*)\)$/.exec(type);
  if (call !== null) {
    const args = splitArgs(call[2]!);
    if (call[1] === 'or') return args.some((arg) => validates(arg, value));
    if (call[1] === 'range') return /^\d+$/.test(value) && Number(value) >= Number(args[0]) && Number(value) <= Number(args[1]);
    throw new Error(`validate_data (stand-in): datatype ${type} is not supported`);
  }
  switch (type) {
    case 'string':
      return true;
    case 'bool':
      return ['0', '1', 'on', 'off', 'true', 'false', 'yes', 'no', 'enabled', 'disabled'].includes(value);
    case 'uinteger':
      return /^\d+$/.test(value);
    case 'ufloat':
      return /^\d+(\.\d+)?$/.test(value);
    case 'port':
      return /^\d+$/.test(value) && Number(value) <= 65535;
    default:
      throw new Error(`validate_data (stand-in): datatype ${type} is not supported`);
  }
}

/** `name:type[:default]`, the type possibly holding colons inside quotes or parentheses. */
function parseSpec(spec: string): { name: string; type: string; fallback: string | undefined } {
  const name = spec.slice(0, spec.indexOf(':'));
  const rest = spec.slice(name.length + 1);
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < rest.length; i++) {
    const c = rest[i]!;
    if (c === '"') quoted = !quoted;
    else if (!quoted && c === '(') depth++;
    else if (!quoted && c === ')') depth--;
    else if (!quoted && depth === 0 && c === ':') return { name, type: rest.slice(0, i), fallback: rest.slice(i + 1) };
  }
  return { name, type: rest, fallback: undefined };
}

const quote = (value: string): string => `'${value.replace(/'/g, "'\\''")}'`;

function main([pkg = '', type = '', section = '', ...specs]: string[]): number {
  let text = '';
  try {
    text = readFileSync(join(process.env.UCI_CONFIG_DIR ?? '/etc/config', pkg), 'utf8');
  } catch {
    // no such package: every option takes its default
  }
  const sections = parseUci(text);
  if (typeof sections === 'string') {
    process.stderr.write(`validate_data: ${pkg}: ${sections}\n`);
    return 1;
  }
  const found = sections.find((s, i) => sectionName(s, i) === section && s.type === type);
  let invalid = false;
  for (const spec of specs) {
    const { name, type: datatype, fallback } = parseSpec(spec);
    const raw = found?.options.get(name);
    const value = Array.isArray(raw) ? raw.join(' ') : raw;
    if (value !== undefined && !validates(datatype, value)) {
      process.stderr.write(`${pkg}.${section}.${name}=${value} validates as ${datatype} with false\n`);
      process.stdout.write(`${name}=;\n`);
      invalid = true;
      continue;
    }
    process.stdout.write(`${name}=${quote(value ?? fallback ?? '')};\n`);
  }
  return invalid ? 1 : 0;
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, '/'))) {
  process.exitCode = main(process.argv.slice(2));
}
