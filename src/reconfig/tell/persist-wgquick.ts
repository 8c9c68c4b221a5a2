/**
 * Persistence to a wg-quick configuration file: the `Endpoint` of the `[Peer]` whose
 * `PublicKey` matches is replaced, or added right after that `PublicKey` line. Every other
 * byte of the file (comments, order, spacing, line endings) stays as it was, so the file still
 * reads the same to `wg-quick strip`, `wg setconf` and the person who wrote it.
 *
 * Lines are read the way wg's config.c reads them: a `#` starts a comment, white space does not
 * count, keys and section names are case-insensitive; the last Endpoint of a section wins.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../../common/atomic.js';
import { ReconfigError } from '../../common/errors.js';
import { notWritable } from '../../common/private-dir.js';
import { fail, ok, type Result } from '../../common/result.js';
import { sameEndpoint } from '../endpoint.js';
import type { PersistOutcome, Persister } from './persist.js';

interface Line {
  /** the line without its end of line */
  readonly text: string;
  /** '\n', '\r\n' or '' (last line without one) */
  readonly eol: string;
}

function splitLines(text: string): Line[] {
  const lines: Line[] = [];
  for (const match of text.matchAll(/([^\n]*?)(\r?\n|$)/g)) {
    if (match[0] === '' && match.index === text.length) break;
    lines.push({ text: match[1] ?? '', eol: match[2] ?? '' });
  }
  return lines;
}

/** What wg sees of a line: no comment, no white space. */
function significant(text: string): string {
  const hash = text.indexOf('#');
  return (hash < 0 ? text : text.slice(0, hash)).replace(/\s+/g, '');
}

function keyValue(text: string): { key: string; value: string } | undefined {
  const line = significant(text);
  const equals = line.indexOf('=');
  if (equals < 0) return undefined;
  return { key: line.slice(0, equals).toLowerCase(), value: line.slice(equals + 1) };
}

interface PeerSection {
  publicKeyLine: number | undefined;
  endpointLine: number | undefined;
}

/** The [Peer] sections whose PublicKey is `publicKey`, with where their lines are. */
function findPeers(lines: readonly Line[], publicKey: string): PeerSection[] {
  const found: PeerSection[] = [];
  let current: (PeerSection & { key: string | undefined }) | undefined;
  const close = (): void => {
    if (current?.key === publicKey) found.push({ publicKeyLine: current.publicKeyLine, endpointLine: current.endpointLine });
    current = undefined;
  };
  lines.forEach((line, index) => {
    const text = significant(line.text);
    if (text.startsWith('[')) {
      close();
      if (text.toLowerCase() === '[peer]') current = { key: undefined, publicKeyLine: undefined, endpointLine: undefined };
      return;
    }
    const pair = keyValue(line.text);
    if (current === undefined || pair === undefined) return;
    if (pair.key === 'publickey') {
      current.key = pair.value;
      current.publicKeyLine = index;
    } else if (pair.key === 'endpoint') {
      current.endpointLine = index;
    }
  });
  close();
  return found;
}

/** `   Endpoint =  old   # note` → `   Endpoint =  NEW   # note`: only the value changes. */
function replaceValue(text: string, value: string): string {
  const equals = text.indexOf('=');
  const hash = text.indexOf('#', equals);
  const end = hash < 0 ? text.length : hash;
  const region = text.slice(equals + 1, end);
  const lead = /^\s*/.exec(region)?.[0] ?? '';
  const trail = /\s*$/.exec(region.slice(lead.length))?.[0] ?? '';
  return `${text.slice(0, equals + 1)}${lead}${value}${trail}${text.slice(end)}`;
}

/** An Endpoint line shaped like the section's PublicKey line (indent, spacing around `=`). */
function endpointLineLike(publicKeyLine: string, value: string): string {
  const shape = /^(\s*)\S+?(\s*=\s*)/.exec(publicKeyLine);
  return `${shape?.[1] ?? ''}Endpoint${shape?.[2] ?? ' = '}${value}`;
}

export interface EndpointEdit {
  readonly text: string;
  readonly changed: boolean;
}

/**
 * Points the [Peer] with `publicKey` at `endpoint` in the text of a wg-quick file. Pure; fails
 * (never throws) when no [Peer] has that key.
 */
export function setPeerEndpoint(text: string, publicKey: string, endpoint: string): Result<EndpointEdit> {
  const lines = splitLines(text);
  const sections = findPeers(lines, publicKey);
  if (sections.length === 0) return fail(`has no [Peer] with PublicKey = ${publicKey}`);
  const out: Line[] = [...lines];
  const inserts: { after: number; line: Line }[] = [];
  let changed = false;
  for (const section of sections) {
    if (section.endpointLine !== undefined) {
      const line = lines[section.endpointLine] as Line;
      const current = keyValue(line.text)?.value;
      if (sameEndpoint(current, endpoint)) continue;
      out[section.endpointLine] = { text: replaceValue(line.text, endpoint), eol: line.eol };
      changed = true;
    } else if (section.publicKeyLine !== undefined) {
      const keyLine = lines[section.publicKeyLine] as Line;
      const eol = keyLine.eol === '' ? (lines.find((l) => l.eol !== '')?.eol ?? '\n') : keyLine.eol;
      inserts.push({ after: section.publicKeyLine, line: { text: endpointLineLike(keyLine.text, endpoint), eol: keyLine.eol } });
      // the PublicKey line was the file's last and had no line end: it gets one now
      if (keyLine.eol === '') out[section.publicKeyLine] = { text: keyLine.text, eol };
      changed = true;
    }
  }
  for (const insert of inserts.sort((a, b) => b.after - a.after)) out.splice(insert.after + 1, 0, insert.line);
  return ok({ text: changed ? out.map((l) => l.text + l.eol).join('') : text, changed });
}

/** wg-quick's own default: /etc/wireguard/IFACE.conf */
export function defaultWgQuickPath(iface: string): string {
  return `/etc/wireguard/${iface}.conf`;
}

export function wgQuickPersister(path: string): Persister {
  return {
    target: `wg-quick file ${path}`,
    async verify(): Promise<void> {
      try {
        readFileSync(path, 'utf8');
      } catch (error) {
        throw new ReconfigError('E_PERSIST', `Cannot read the wg-quick file ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}). Give its path with --persist wg-quick=PATH, or --persist none.`, { exitCode: 2 });
      }
      // replaced by rename: the directory of the file (of a link's target: the link stays) must
      // take a new file, and the file itself be ours to replace
      const file = realpathSync(path);
      for (const target of [dirname(file), file]) {
        const code = notWritable(target);
        if (code === undefined) continue;
        const systemd = code === 'EROFS' ? ` Under the systemd unit (ProtectSystem=strict) allow it: systemctl edit reconfig-wg@IFACE, [Service] ReadWritePaths=${dirname(file)}.` : '';
        throw new ReconfigError('E_PERSIST', `${target} is not writable (${code}), so the wg-quick file ${path} cannot be updated.${systemd} Or use --persist none.`, { exitCode: 2 });
      }
    },
    async persist(publicKey: string, endpoint: string): Promise<PersistOutcome> {
      let text: string;
      let mode: number;
      // a symbolic link (/etc/wireguard/wg0.conf → a file kept elsewhere) stays a link: the file
      // it points to is what is replaced, beside itself
      let file: string;
      try {
        file = realpathSync(path);
        text = readFileSync(file, 'utf8');
        mode = statSync(file).mode & 0o7777;
      } catch (error) {
        throw new ReconfigError('E_PERSIST', `Cannot read the wg-quick file ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}). Give its path with --persist wg-quick=PATH, or --persist none.`);
      }
      const edit = setPeerEndpoint(text, publicKey, endpoint);
      if (!edit.ok) throw new ReconfigError('E_PERSIST', `The wg-quick file ${path} ${edit.reason}; add the peer there, or use --persist none.`);
      if (!edit.value.changed) return 'unchanged';
      try {
        writeFileAtomic(file, edit.value.text, mode);
      } catch (error) {
        throw new ReconfigError('E_PERSIST', `Cannot write the wg-quick file ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}). Check the directory is writable, or use --persist none.`);
      }
      return 'updated';
    },
  };
}
