/**
 * `reconfig-wg check [-i IFACE]`: a doctor for newcomers. It goes through what reconfig-wg
 * needs, item by item, and says for each what it found and, when something is wrong, the fix.
 *
 * Each item is one function, listed in CHECK_ITEMS: adding one is writing that function and
 * listing it. An item that needs what an earlier one found (the interface's listen port) is
 * skipped when that is missing.
 *
 * Exit status: 0 when reconfig-wg can run (warnings allowed), 1 when something blocks it,
 * 2 bad usage.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { dirname } from 'node:path';
import type { FlagSpecs } from '../common/args.js';
import { readCommandArgs, reportFatal, usageError } from '../common/cli.js';
import { notWritable } from '../common/private-dir.js';
import { runTool, type ToolResult } from '../common/run-tool.js';
import { openCapture as realOpenCapture, type Capture, type CaptureOptions } from '../net/capture.js';
import { openPinholer as realOpenPinholer } from '../net/conntrack.js';
import { openInjector as realOpenInjector } from '../net/inject.js';
import { wireguardFilter } from '../net/filter.js';
import { HASH_BACKEND, type HashBackendName } from '../wireguard/blake2.js';
import { readInterface, resolveInterface, runWg, type InterfaceConfig, type WgRunner } from '../wireguard/wg.js';
import { checkFiles } from './check-files.js';
import { firewallVerdict } from './check-firewall.js';
import { selfTestLoopback, type PacketInjector, type PacketPinholer } from './deliver.js';
import { validateInterfaceName } from './options.js';
import { defaultPersist, describePersist, parsePersist, type PersistChoice } from './tell/persist.js';
import { uciPeerSections } from './tell/persist-uci.js';
import { defaultWgQuickPath, setPeerEndpoint } from './tell/persist-wgquick.js';

export type CheckState = 'ok' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  readonly name: string;
  readonly state: CheckState;
  readonly detail: string;
  /** what to do, when the state is not ok */
  readonly fix?: string;
}

export interface CheckContext {
  readonly interface: string | undefined;
  readonly device: string;
  readonly persist: PersistChoice;
  readonly run: WgRunner;
  readonly openCapture: (options: CaptureOptions) => Capture;
  /** runs nft with these arguments; the real one unless a test says otherwise */
  readonly nft: (args: readonly string[]) => Promise<ToolResult>;
  readonly openInjector: () => PacketInjector;
  readonly openPinholer: () => PacketPinholer;
  /** a sysctl's value (`net/ipv4/ip_forward`), undefined when it cannot be read; /proc/sys unless a test says otherwise */
  readonly readSysctl?: (name: string) => string | undefined;
  /** where BLAKE2s runs in this process; this process's own choice unless a test says otherwise */
  readonly hashBackend?: HashBackendName;
  /** what the interface item found: later items use it (never the private key) */
  found?: { readonly iface: string; readonly config: InterfaceConfig };
  /** what the inject item's self-test found: does a re-sent packet get in on lo? */
  loopbackAccepted?: boolean | undefined;
}

export interface CheckItem {
  readonly name: string;
  readonly run: (context: CheckContext) => Promise<CheckResult>;
}

const result = (name: string, state: CheckState, detail: string, fix?: string): CheckResult => (fix === undefined ? { name, state, detail } : { name, state, detail, fix });

async function wgTool(context: CheckContext): Promise<CheckResult> {
  const version = await context.run(['--version']);
  if (version.exitCode !== 0) return result('wg', 'fail', `wg --version failed: ${version.stderr.trim()}`, 'reinstall wireguard-tools');
  return result('wg', 'ok', version.stdout.trim().split('\n')[0] ?? 'present');
}

async function hashBackend(context: CheckContext): Promise<CheckResult> {
  if ((context.hashBackend ?? HASH_BACKEND) === 'openssl') return result('hash', 'ok', "BLAKE2s in this Node's OpenSSL (node:crypto)");
  return result('hash', 'ok', "BLAKE2s in JavaScript (@noble/hashes): this Node's OpenSSL is built without BLAKE2 (as on OpenWrt); each verified initiation costs a little more CPU");
}

async function wgInterface(context: CheckContext): Promise<CheckResult> {
  const iface = await resolveInterface(context.interface, context.run);
  const read = await readInterface(iface, context.run);
  const config = { ...read, privateKey: undefined };
  context.found = { iface, config };
  if (read.privateKey === undefined) return result('interface', 'fail', `${iface} has no private key, so no initiation can be verified`, `wg set ${iface} private-key FILE`);
  if (config.listenPort === 0) return result('interface', 'fail', `${iface} has no listen port`, `wg set ${iface} listen-port 51820 (and open nothing: reconfig-wg sees the port before the firewall)`);
  const peers = config.peers.size;
  if (peers === 0) return result('interface', 'warn', `${iface}: private key set, listen port ${config.listenPort}, but no peers: nothing to follow`, `wg set ${iface} peer KEY allowed-ips ADDRESS/32`);
  return result('interface', 'ok', `${iface}: private key set, listen port ${config.listenPort}, ${peers} peer${peers === 1 ? '' : 's'}`);
}

async function capture(context: CheckContext): Promise<CheckResult> {
  const port = context.found?.config.listenPort;
  if (port === undefined || port === 0) return result('capture', 'skip', 'needs the interface and its listen port');
  const filter = wireguardFilter(port);
  const session = context.openCapture({ device: context.device, filter, onFrame: () => undefined });
  session.close();
  return result('capture', 'ok', `libpcap opens ${context.device} (${session.link}) with the daemon's filter for port ${port}`);
}

async function firewall(context: CheckContext): Promise<CheckResult> {
  const port = context.found?.config.listenPort;
  if (port === undefined || port === 0) return result('firewall', 'skip', 'needs the listen port');
  const listed = await context.nft(['-j', 'list', 'ruleset']);
  if (listed.missing) return result('firewall', 'warn', 'nft is not installed: cannot tell whether new inbound UDP to the port is dropped', 'nothing needed; either way reconfig-wg works');
  if (listed.exitCode !== 0) return result('firewall', 'warn', `cannot read the nftables ruleset (${listed.stderr.trim().split('\n')[0] ?? ''})`, 'run check as root to see it');
  const finding = firewallVerdict(listed.stdout, port);
  if (!finding.ok) return result('firewall', 'warn', `cannot read the nftables ruleset: ${finding.reason}`);
  const { verdict, decidedBy, conditional } = finding.value;
  const depends = conditional.length === 0 ? '' : `; rules that depend on the incoming interface or address: ${conditional.map((c) => `${c.where} (${c.verdict === 'unknown' ? 'undecided' : c.verdict})`).join(', ')}`;
  if (verdict === 'drop') {
    return result('firewall', 'ok', `new UDP to port ${port} is dropped (${decidedBy})${depends}: fine, reconfig-wg is what lets roaming peers back in`);
  }
  return result('firewall', 'ok', `new UDP to port ${port} is accepted (${decidedBy})${depends}: WireGuard follows a roaming peer by itself; reconfig-wg adds nothing but does no harm`);
}

async function inject(context: CheckContext): Promise<CheckResult> {
  const port = context.found?.config.listenPort;
  if (port === undefined || port === 0) return result('inject', 'skip', 'needs the listen port');
  let injector: PacketInjector;
  try {
    injector = context.openInjector();
  } catch (error) {
    return result('inject', 'warn', `${(error as Error).message.replace(/\.$/, '')}: reconfig-wg runs without injection (wg set after a verified initiation; roaming on data packets waits for the next handshake)`, 'run as root or with CAP_NET_RAW, or pass --no-inject to say so');
  }
  try {
    const families = [...injector.families].map((f) => `IPv${f}`).join(' and ');
    // The daemon's own start-up test: a message WireGuard ignores, re-sent to the port on lo.
    const accepted = await selfTestLoopback(injector, port);
    context.loopbackAccepted = accepted;
    const lo =
      accepted === true
        ? 're-sent packets get past the firewall on lo'
        : accepted === false
          ? 'the firewall drops re-sent packets on lo, so each needs a conntrack pinhole (next item)'
          : 'could not test whether the firewall lets re-sent packets in on lo';
    return result('inject', 'ok', `raw sockets open for ${families}; ${lo}`);
  } finally {
    injector.close();
  }
}

async function pinhole(context: CheckContext): Promise<CheckResult> {
  let pinholer: PacketPinholer;
  try {
    pinholer = context.openPinholer();
  } catch (error) {
    const message = (error as Error).message.replace(/\.$/, '');
    if (context.loopbackAccepted === false) {
      return result('pinhole', 'warn', `${message}; the firewall drops re-sent packets on lo, so injection cannot work: endpoints move with wg set after a verified initiation only`, 'run with CAP_NET_ADMIN and the nf_conntrack_netlink module, or accept lo in the firewall');
    }
    return result('pinhole', 'ok', `not available (${message}); not needed while the firewall lets re-sent packets in on lo`);
  }
  pinholer.close();
  return result('pinhole', 'ok', 'conntrack entries can be added (a pinhole before each injection when the firewall needs one)');
}

async function persistence(context: CheckContext): Promise<CheckResult> {
  const choice = context.persist;
  if (choice.kind === 'none') return result('persist', 'ok', 'none: learnt endpoints are not saved; after a restart each peer is found again by its next handshake');
  const found = context.found;
  if (found === undefined) return result('persist', 'skip', 'needs the interface');
  const keys = [...found.config.peers.keys()];
  if (choice.kind === 'wg-quick') {
    const path = choice.path ?? defaultWgQuickPath(found.iface);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      return result('persist', 'fail', `cannot read the wg-quick file ${path} (${(error as NodeJS.ErrnoException).code ?? ''})`, `give its path: --persist wg-quick=PATH, or --persist none`);
    }
    // a link stays a link: the file it points to is replaced beside itself (persist-wgquick.ts)
    const file = realpathSync(path);
    if (notWritable(file) !== undefined || notWritable(dirname(file)) !== undefined) return result('persist', 'fail', `${path} or its directory is not writable`, 'run as root, or choose a file reconfig-wg may replace');
    const missing = keys.filter((key) => !setPeerEndpoint(text, key, '192.0.2.1:1').ok);
    if (missing.length > 0) return result('persist', 'warn', `${path} has no [Peer] for ${missing.length} of ${keys.length} peers (${missing.join(', ')}): their endpoints will not be saved`, 'add a [Peer] with their PublicKey');
    return result('persist', 'ok', `wg-quick file ${path}: writable, a [Peer] for every peer`);
  }
  const sections = await uciPeerSections({ iface: found.iface, confDir: choice.confDir });
  const confDir = choice.confDir ?? '/etc/config';
  if (notWritable(confDir) !== undefined) return result('persist', 'fail', `the UCI config directory ${confDir} is not writable`, 'run as root');
  const have = new Set(sections.map((s) => s.options.get('public_key')?.[0]));
  const missing = keys.filter((key) => !have.has(key));
  if (missing.length > 0) {
    return result('persist', 'warn', `the UCI network config has no wireguard_${found.iface} section for ${missing.length} of ${keys.length} peers (${missing.join(', ')})`, `uci add network wireguard_${found.iface}, with public_key set`);
  }
  return result('persist', 'ok', `UCI network config in ${confDir}: writable, a wireguard_${found.iface} section for every peer`);
}

async function files(context: CheckContext): Promise<CheckResult> {
  const verdict = checkFiles(context.found?.iface ?? context.interface);
  return result('files', verdict.ok ? 'ok' : 'fail', verdict.detail, verdict.fix);
}

function procSysctl(name: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/${name}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * A hub forwards between its peers (the mesh's relay, spokes reaching each other): IPv4 (and
 * IPv6 where a peer has IPv6 allowed IPs) forwarding must be on, and ICMP redirects off on the
 * interface. A packet from one spoke to another comes in and goes out through the same
 * interface, so Linux would tell the sender to use the other spoke as its next hop: on a
 * WireGuard interface there is no shared link, the redirect is noise in the tunnel, and a spoke
 * that accepts redirects caches a route through a next hop it cannot reach. The interface's
 * value counts if either conf/all or conf/IFACE is on (ip-sysctl.rst).
 */
async function forwarding(context: CheckContext): Promise<CheckResult> {
  const found = context.found;
  if (found === undefined) return result('forwarding', 'skip', 'needs the interface');
  const peers = [...found.config.peers.values()];
  if (peers.length < 2) return result('forwarding', 'ok', `${found.iface} has ${peers.length} peer${peers.length === 1 ? '' : 's'}: nothing to forward between peers`);
  const read = context.readSysctl ?? procSysctl;
  const iface = found.iface;
  const wrong: string[] = [];
  const fixes: string[] = [];
  const unread: string[] = [];
  const check = (name: string, want: '0' | '1', why: string): void => {
    const value = read(name);
    if (value === undefined) unread.push(name.replaceAll('/', '.'));
    else if (value !== want) {
      wrong.push(`${name.replaceAll('/', '.')} is ${value} (${why})`);
      fixes.push(`${name.replaceAll('/', '.')}=${want}`);
    }
  };
  check('net/ipv4/ip_forward', '1', 'peers cannot reach each other through this router');
  if (peers.some((peer) => (peer.allowedIps ?? []).some((prefix) => prefix.includes(':')))) check('net/ipv6/conf/all/forwarding', '1', 'no IPv6 between peers');
  check('net/ipv4/conf/all/send_redirects', '0', 'ICMP redirects between spokes of one interface');
  check(`net/ipv4/conf/${iface}/send_redirects`, '0', `ICMP redirects between spokes on ${iface}`);
  if (wrong.length > 0) return result('forwarding', 'warn', `as a hub for ${peers.length} peers: ${wrong.join('; ')}`, `sysctl -w ${fixes.join(' ')} (and in /etc/sysctl.d to keep it)`);
  if (unread.length > 0) return result('forwarding', 'warn', `cannot read ${unread.join(', ')}`, 'run check as root on the router itself');
  return result('forwarding', 'ok', `forwarding on, ICMP redirects off on ${iface}: peers reach each other through this router`);
}

/** In order; later items may use what earlier ones found. */
export const CHECK_ITEMS: readonly CheckItem[] = [
  { name: 'wg', run: wgTool },
  { name: 'hash', run: hashBackend },
  { name: 'interface', run: wgInterface },
  { name: 'capture', run: capture },
  { name: 'firewall', run: firewall },
  { name: 'inject', run: inject },
  { name: 'pinhole', run: pinhole },
  { name: 'persist', run: persistence },
  { name: 'forwarding', run: forwarding },
  { name: 'files', run: files },
];

const realNft = (args: readonly string[]): Promise<ToolResult> => runTool('nft', args);

/** Runs every item; an item that throws is a failure with the error's own words. Never throws. */
export async function runChecks(context: CheckContext, items: readonly CheckItem[] = CHECK_ITEMS): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const item of items) {
    try {
      results.push({ ...(await item.run(context)), name: item.name });
    } catch (error) {
      results.push(result(item.name, 'fail', (error as Error).message));
    }
  }
  return results;
}

const MARK: Record<CheckState, string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL', skip: 'skip' };

export function formatChecks(results: readonly CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.name.length));
  return results
    .map((r) => `${MARK[r.state]}  ${r.name.padEnd(width)}  ${r.detail}${r.fix === undefined ? '' : `\n${' '.repeat(8 + width)}fix: ${r.fix}`}`)
    .join('\n');
}

export function checkExitCode(results: readonly CheckResult[]): number {
  return results.some((r) => r.state === 'fail') ? 1 : 0;
}

const help = `
  Checks, item by item, that reconfig-wg can run here, and says how to fix what is missing:
  the wg tool; the interface with a private key and a listen port; a capture on the device
  with the real filter; whether the firewall drops new inbound UDP to the port (fine: that is
  why reconfig-wg exists); whether packets can be handed to WireGuard (raw socket, and a
  conntrack pinhole where the firewall needs one); whether the --persist target can be written;
  with two peers or more, whether this router forwards between them as a hub should (IPv4 and
  IPv6 forwarding on, ICMP redirects off on the interface); whether the runtime and state
  directories are private and the state file is the daemon's own.

  Usage
    $ reconfig-wg check [-i IFACE] [-d DEVICE] [--persist WHERE] [--json]

  Options
    -i, --interface IFACE   WireGuard interface (default: the only one)
    -d, --device DEVICE     capture device to try (default: any)
        --persist WHERE     the target to check: uci, wg-quick[=PATH] or none
                            (default as for the daemon: uci on OpenWrt, else none)
        --json              the results as JSON
    -h, --help              show this help

  Exit status
    0 reconfig-wg can run (warnings allowed), 1 something blocks it, 2 bad usage
`;

const FLAGS = {
  interface: { type: 'string', shortFlag: 'i', value: 'a WireGuard interface name, e.g. wg0' },
  device: { type: 'string', shortFlag: 'd', value: 'a capture device, e.g. any or eth0' },
  persist: { type: 'string', value: 'uci, wg-quick, wg-quick=PATH or none' },
  json: { type: 'boolean' },
  help: { type: 'boolean', shortFlag: 'h' },
} as const satisfies FlagSpecs;

const PROGRAM = 'reconfig-wg check';

export async function main(argv: readonly string[]): Promise<number> {
  const parsed = readCommandArgs(PROGRAM, help, FLAGS, argv);
  if ('exit' in parsed) return parsed.exit;
  const { flags, input } = parsed;
  try {
    if (input.length > 0) throw usageError(`unexpected argument '${input[0] ?? ''}'.`);
    const persist = flags.persist === undefined ? defaultPersist() : parsePersist(flags.persist);
    const context: CheckContext = {
      interface: flags.interface === undefined ? undefined : validateInterfaceName(flags.interface),
      device: flags.device ?? 'any',
      persist,
      run: runWg,
      openCapture: realOpenCapture,
      openInjector: realOpenInjector,
      openPinholer: realOpenPinholer,
      nft: realNft,
    };
    const results = await runChecks(context);
    const code = checkExitCode(results);
    if (flags.json) {
      process.stdout.write(`${JSON.stringify({ interface: context.found?.iface ?? context.interface ?? null, persist: describePersist(persist), canRun: code === 0, results }, null, 2)}\n`);
    } else {
      process.stdout.write(`${formatChecks(results)}\n${code === 0 ? 'reconfig-wg can run here' : 'reconfig-wg cannot run here until the FAIL items are fixed'}\n`);
    }
    return code;
  } catch (error) {
    return reportFatal(PROGRAM, error);
  }
}
