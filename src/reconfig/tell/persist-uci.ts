/**
 * Persistence to OpenWrt's UCI: the peer section of the interface (type `wireguard_IFACE` in
 * the `network` config) whose `public_key` matches gets `endpoint_host` and `endpoint_port`,
 * and the change is committed. Nothing is reloaded: the running interface already has the
 * endpoint; the config only has to remember it for the next `ifup` or reboot.
 *
 * It runs the `uci` tool (by name, from PATH) without a shell: `uci show network` to find the
 * section, `uci set` for each option that differs, then `uci commit network`, which is what
 * writes the file (uci replaces it by rename). Nothing is set or committed when both options
 * already hold the endpoint.
 */
import { ReconfigError } from '../../common/errors.js';
import { fail, ok, type Result } from '../../common/result.js';
import { runTool } from '../../common/run-tool.js';
import type { PersistOutcome, Persister } from './persist.js';

export const UCI_PACKAGE = 'network';
const UCI_TIMEOUT_MS = 10_000;

export interface UciSection {
  /** how `uci show` names it: `peer1`, or `@wireguard_wg0[0]` when anonymous */
  readonly ref: string;
  readonly type: string;
  readonly options: ReadonlyMap<string, readonly string[]>;
}

/** Reads one value as `uci show` prints it: 'a' or 'a' 'b' (a list), with '\'' for a quote. */
function parseShowValue(text: string): Result<string[]> {
  const values: string[] = [];
  let i = 0;
  while (i < text.length) {
    if (text[i] === ' ') {
      i++;
      continue;
    }
    if (text[i] !== "'") {
      // unquoted (older uci versions print simple values bare)
      const end = text.indexOf(' ', i);
      values.push(text.slice(i, end < 0 ? text.length : end));
      i = end < 0 ? text.length : end;
      continue;
    }
    let value = '';
    i++;
    for (;;) {
      const close = text.indexOf("'", i);
      if (close < 0) return fail('has an unbalanced quote');
      value += text.slice(i, close);
      i = close + 1;
      if (text.startsWith("\\''", i)) {
        value += "'";
        i += 3;
        continue;
      }
      break;
    }
    values.push(value);
  }
  return ok(values);
}

/**
 * Parses `uci show PACKAGE`. Pure; a line it cannot read is a failure, never an exception.
 * With `onlyType`, the options of other sections are not kept: `uci show network` prints the
 * interface's private_key too, and it has no business in this process's memory.
 */
export function parseUciShow(text: string, pkg = UCI_PACKAGE, onlyType?: string): Result<UciSection[]> {
  const sections = new Map<string, { ref: string; type: string; options: Map<string, string[]> }>();
  for (const [index, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    const equals = line.indexOf('=');
    const path = equals < 0 ? '' : line.slice(0, equals);
    if (!path.startsWith(`${pkg}.`)) return fail(`line ${index + 1} is not an option of ${pkg}`);
    const rest = path.slice(pkg.length + 1);
    // a section ref may hold dots only inside @type[...]; the option name never does
    const dot = rest.lastIndexOf('.');
    const bracket = rest.lastIndexOf(']');
    const value = parseShowValue(line.slice(equals + 1));
    if (!value.ok) return fail(`line ${index + 1} ${value.reason}`);
    if (dot < 0 || dot < bracket) {
      sections.set(rest, { ref: rest, type: value.value[0] ?? '', options: new Map() });
    } else {
      const section = sections.get(rest.slice(0, dot));
      if (section === undefined) return fail(`line ${index + 1} names an option of a section not shown before it`);
      if (onlyType === undefined || section.type === onlyType) section.options.set(rest.slice(dot + 1), value.value);
    }
  }
  return ok([...sections.values()]);
}

/** `192.0.2.7:51820` → host and port; `[2001:db8::7]:51820` → host without brackets. */
export function splitEndpoint(endpoint: string): { host: string; port: string } {
  const colon = endpoint.lastIndexOf(':');
  const host = endpoint.slice(0, colon);
  return { host: host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host, port: endpoint.slice(colon + 1) };
}

export interface UciPersisterOptions {
  readonly iface: string;
  /** uci -c: where the config files are; undefined for uci's default (/etc/config) */
  readonly confDir: string | undefined;
  /** the program; `uci` from PATH unless a test says otherwise */
  readonly command?: string;
}

/** Runs `uci [-c DIR] ARGS…` without a shell; throws an E_PERSIST ReconfigError that says why. */
export async function runUci(options: Pick<UciPersisterOptions, 'confDir' | 'command'>, args: readonly string[]): Promise<string> {
  const argv = [...(options.confDir === undefined ? [] : ['-c', options.confDir]), ...args];
  const result = await runTool(options.command ?? 'uci', argv, UCI_TIMEOUT_MS);
  if (result.missing) {
    throw new ReconfigError('E_PERSIST', 'The uci tool was not found. It comes with OpenWrt; elsewhere use --persist wg-quick or --persist none.');
  }
  if (result.exitCode !== 0) {
    const said = (result.stderr || result.stdout).trim().split('\n')[0] ?? '';
    throw new ReconfigError('E_PERSIST', `'uci ${argv.join(' ')}' failed${said ? `: ${said}` : ` (${result.failure ?? `exit ${String(result.exitCode)}`})`}.`);
  }
  return result.stdout;
}

/** The peer sections of `iface` (type wireguard_IFACE) in the network config. */
export async function uciPeerSections(options: UciPersisterOptions): Promise<UciSection[]> {
  const type = `wireguard_${options.iface}`;
  const shown = parseUciShow(await runUci(options, ['show', UCI_PACKAGE]), UCI_PACKAGE, type);
  if (!shown.ok) throw new ReconfigError('E_PERSIST', `'uci show ${UCI_PACKAGE}' printed something this version does not understand (${shown.reason}).`);
  return shown.value.filter((s) => s.type === type);
}

export function uciPersister(options: UciPersisterOptions): Persister {
  const sectionType = `wireguard_${options.iface}`;
  const uci = (args: readonly string[]): Promise<string> => runUci(options, args);

  return {
    target: `UCI ${UCI_PACKAGE} config${options.confDir === undefined ? '' : ` in ${options.confDir}`}`,
    async verify(): Promise<void> {
      try {
        await uciPeerSections(options);
      } catch (error) {
        throw new ReconfigError('E_PERSIST', (error as Error).message, { exitCode: 2 });
      }
    },
    async persist(publicKey: string, endpoint: string): Promise<PersistOutcome> {
      const sections = (await uciPeerSections(options)).filter((s) => s.options.get('public_key')?.[0] === publicKey);
      if (sections.length === 0) {
        throw new ReconfigError(
          'E_PERSIST',
          `No ${sectionType} section in the UCI ${UCI_PACKAGE} config has public_key ${publicKey}; add the peer there (uci add ${UCI_PACKAGE} ${sectionType}), or use --persist none.`,
        );
      }
      const { host, port } = splitEndpoint(endpoint);
      let changed = false;
      for (const section of sections) {
        const wanted: [string, string][] = [
          ['endpoint_host', host],
          ['endpoint_port', port],
        ];
        for (const [option, value] of wanted) {
          const current = section.options.get(option);
          if (current?.length === 1 && current[0] === value) continue;
          await uci(['set', `${UCI_PACKAGE}.${section.ref}.${option}=${value}`]);
          changed = true;
        }
      }
      if (!changed) return 'unchanged';
      // uci set only records the change (in /tmp/.uci); commit is what writes the config file.
      await uci(['commit', UCI_PACKAGE]);
      return 'updated';
    },
  };
}
