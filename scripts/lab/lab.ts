/**
 * The netns lab: the road-warrior story on one machine, with real WireGuard, wg, nftables and
 * conntrack. Shared by the e2e tests, the demo and the benchmarks. WireGuard is userspace
 * wireguard-go by default, or the kernel's module (RECONFIG_WG_LAB_WG=kernel, or the
 * `wireguard` option), which routers run; this machine's kernel has none, so that lab runs
 * inside the VM of scripts/vm/run-in-vm.sh.
 *
 *   roamer i:  r1 ── lan ── nat (masquerade random) ── wan ─┐
 *                                                           ├─ switch ── r2 (firewall, wg server)
 *   attacker ───────────────────────────────────────────────┘
 *
 * Addresses are documentation ranges only: the "Internet" is 192.0.2.0/24 and
 * 2001:db8:100::/64, each roamer's LAN is 198.51.100.0/24 and 2001:db8:1::/64 (LANs are
 * separate, so they can share numbers), and tunnel addresses are 203.0.113.0/24.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeFrame } from '../../src/net/packet.js';
import { host, labId, nsRun, Scope, veth, waitFor, type LabProcess } from './netns.js';
import { readPcapFile } from './pcapfile.js';

export const WG_PORT = 51820;
export const R2_V4 = '192.0.2.1';
export const R2_V6 = '2001:db8:100::1';
export const ATTACKER_V4 = '192.0.2.66';
export const ATTACKER_V6 = '2001:db8:100::66';
export const R2_TUNNEL = '203.0.113.1';

/** The WireGuard implementation at both ends of the lab. */
export type LabWireGuard = 'wireguard-go' | 'kernel';
export const LAB_WIREGUARDS: readonly LabWireGuard[] = ['wireguard-go', 'kernel'];

/** The implementation named by RECONFIG_WG_LAB_WG (default wireguard-go); throws on any other name. */
export function labWireGuardFromEnv(env: NodeJS.ProcessEnv = process.env): LabWireGuard {
  const name = env.RECONFIG_WG_LAB_WG ?? 'wireguard-go';
  if (!(LAB_WIREGUARDS as readonly string[]).includes(name)) {
    throw new Error(`RECONFIG_WG_LAB_WG=${name}: the lab's WireGuard is one of ${LAB_WIREGUARDS.join(', ')}`);
  }
  return name as LabWireGuard;
}

export interface Roamer {
  readonly index: number;
  readonly ns: string;
  readonly natNs: string;
  readonly wg: string;
  readonly privateKey: string;
  readonly publicKey: string;
  readonly tunnel: string;
  /** the NAT's public addresses, which R2 sees as the source */
  readonly natV4: string;
  readonly natV6: string;
  /** the wireguard-go process; undefined for kernel WireGuard */
  readonly wireguard: LabProcess | undefined;
}

export interface Lab {
  readonly id: string;
  /** which WireGuard runs at both ends */
  readonly wireguard: LabWireGuard;
  readonly scope: Scope;
  readonly sw: string;
  readonly r2: { readonly ns: string; readonly wg: string; readonly privateKey: string; readonly publicKey: string; readonly wireguard: LabProcess | undefined };
  readonly attacker: { readonly ns: string };
  readonly roamers: readonly Roamer[];
  close(): Promise<void>;
}

export interface LabOptions {
  /** how many roaming routers, each behind its own NAT (default 1) */
  roamers?: number;
  /** roamers reach R2 over IPv6 instead of IPv4 (default false) */
  ipv6?: boolean;
  /** start the roamers' WireGuard with R2 as endpoint right away (default true) */
  connect?: boolean;
  /**
   * R2's firewall: `closed` drops new inbound UDP to the WireGuard port on every interface, `lo`
   * too (default); `closed-lo-accepted` accepts everything on lo first, as OpenWrt's fw4 and ufw
   * do; `open` lets new packets in (WireGuard alone, the native baseline).
   */
  firewall?: LabFirewall;
  /** every roamer behind the first roamer's NAT, on one LAN (default false) */
  sharedNat?: boolean;
  /** the WireGuard at both ends (default: RECONFIG_WG_LAB_WG, else wireguard-go) */
  wireguard?: LabWireGuard;
}

export type LabFirewall = 'closed' | 'closed-lo-accepted' | 'open';

async function genKeyPair(): Promise<{ privateKey: string; publicKey: string }> {
  const privateKey = (await host('wg', ['genkey'])).trim();
  const publicKey = (await host('wg', ['pubkey'], `${privateKey}\n`)).trim();
  return { privateKey, publicKey };
}

/** `wg set` takes keys from files only; the file lives for the duration of the call. */
async function wgSetPrivateKey(ns: string, wg: string, privateKey: string, extra: readonly string[]): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rwg-lab-'));
  const file = join(dir, 'key');
  try {
    writeFileSync(file, `${privateKey}\n`, { mode: 0o600 });
    await nsRun(ns, 'wg', ['set', wg, 'private-key', file, ...extra]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * wireguard-go in the foreground. Under heavy load (many labs at once) it sometimes exits at start
 * with "Failed to listen on uapi socket": its control socket vanished between being made and
 * being watched. That is the lab's machine, not the product: try again, three times at most.
 */
async function startWireguardGo(scope: Scope, ns: string, wg: string): Promise<LabProcess> {
  let lines: string[] = [];
  for (let attempt = 1; attempt <= 3; attempt++) {
    const proc = scope.start(ns, 'wireguard-go', [wg], { WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: 'error' });
    const up = await waitFor(async () => {
      if (proc.exited) return true;
      try {
        await nsRun(ns, 'wg', ['show', wg]);
        return true;
      } catch {
        return false;
      }
    }, 10_000);
    if (up && !proc.exited) return proc;
    lines = proc.lines;
    await proc.stop();
    if (!lines.some((line) => line.includes('uapi socket'))) break;
  }
  throw new Error(`wireguard-go ${wg} did not come up in ${ns}: ${lines.join('\n')}`);
}

/**
 * A WireGuard interface named `wg` in `ns`, down, unconfigured: wireguard-go's process, or
 * undefined for the kernel's (`ip link add … type wireguard`, which needs the wireguard module).
 */
async function createInterface(scope: Scope, ns: string, wg: string, wireguard: LabWireGuard): Promise<LabProcess | undefined> {
  if (wireguard === 'wireguard-go') return startWireguardGo(scope, ns, wg);
  try {
    await nsRun(ns, 'ip', ['link', 'add', wg, 'type', 'wireguard']);
  } catch (error) {
    throw new Error(
      `kernel WireGuard is not available here (${(error as Error).message}): load the wireguard module, or run the lab in the VM (scripts/vm/run-in-vm.sh, after scripts/setup.sh --vm)`,
    );
  }
  return undefined;
}

/** Deletes R2's WireGuard interface; wireguard-go's process exits with it. */
async function deleteServerInterface(lab: Lab): Promise<void> {
  await nsRun(lab.r2.ns, 'ip', ['link', 'del', lab.r2.wg]);
  await lab.r2.wireguard?.waitForExit(5000);
}

/** R2's WireGuard interface, up, with its key, listen port and tunnel address (no peers). */
async function startServer(scope: Scope, ns: string, wg: string, privateKey: string, port: number, kind: LabWireGuard): Promise<LabProcess | undefined> {
  const wireguard = await createInterface(scope, ns, wg, kind);
  await wgSetPrivateKey(ns, wg, privateKey, ['listen-port', String(port)]);
  await nsRun(ns, 'ip', ['addr', 'add', `${R2_TUNNEL}/24`, 'dev', wg]);
  await nsRun(ns, 'ip', ['link', 'set', wg, 'up']);
  return wireguard;
}

async function addServerPeer(ns: string, wg: string, roamer: Pick<Roamer, 'publicKey' | 'tunnel'>): Promise<void> {
  await nsRun(ns, 'wg', ['set', wg, 'peer', roamer.publicKey, 'allowed-ips', `${roamer.tunnel}/32`]);
}

/**
 * Deletes R2's WireGuard interface and creates it again, same name and key, on `port`, with the
 * same peers, as `wg-quick down; wg-quick up` with a changed ListenPort would. The firewall is
 * closed to new inbound UDP on the new port too.
 */
export async function recreateServer(lab: Lab, port: number): Promise<LabProcess | undefined> {
  await deleteServerInterface(lab);
  const wireguard = await startServer(lab.scope, lab.r2.ns, lab.r2.wg, lab.r2.privateKey, port, lab.wireguard);
  for (const roamer of lab.roamers) await addServerPeer(lab.r2.ns, lab.r2.wg, roamer);
  await nsRun(lab.r2.ns, 'nft', ['add', 'rule', 'inet', 'filter', 'input', 'udp', 'dport', String(port), 'ct', 'state', 'new', 'counter', 'name', 'wg_new_dropped', 'drop']);
  return wireguard;
}

/**
 * R2's configuration as a wg-quick file, with comments and wg-quick's own keys (Address), as an
 * admin would keep it: its [Peer] sections have no Endpoint (road warriors).
 */
export function serverWgQuickConfig(lab: Lab): string {
  const peers = lab.roamers.map((roamer) => `\n# road warrior ${roamer.index}\n[Peer]\n  PublicKey =  ${roamer.publicKey}\n  AllowedIPs = ${roamer.tunnel}/32   # its tunnel address\n`);
  return `# R2 (lab ${lab.id})\n[Interface]\nPrivateKey = ${lab.r2.privateKey}\nListenPort = ${WG_PORT}\nAddress = ${R2_TUNNEL}/24\n${peers.join('')}`;
}

/**
 * Restarts R2's WireGuard from a wg-quick file, as \`wg-quick down; wg-quick up\` would: the
 * interface is deleted (wireguard-go exits), created again, and configured with
 * \`wg setconf\` from \`wg-quick strip FILE\`; Address is applied as wg-quick does. Returns the
 * new wireguard-go process (undefined for kernel WireGuard).
 */
export async function restartServerFromWgQuick(lab: Lab, configFile: string): Promise<LabProcess | undefined> {
  const stripped = await host('wg-quick', ['strip', configFile]);
  await deleteServerInterface(lab);
  const wireguard = await createInterface(lab.scope, lab.r2.ns, lab.r2.wg, lab.wireguard);
  const dir = mkdtempSync(join(tmpdir(), 'rwg-lab-'));
  try {
    const file = join(dir, 'setconf');
    writeFileSync(file, stripped, { mode: 0o600 });
    await nsRun(lab.r2.ns, 'wg', ['setconf', lab.r2.wg, file]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await nsRun(lab.r2.ns, 'ip', ['addr', 'add', `${R2_TUNNEL}/24`, 'dev', lab.r2.wg]);
  await nsRun(lab.r2.ns, 'ip', ['link', 'set', lab.r2.wg, 'up']);
  return wireguard;
}

async function nft(ns: string, ruleset: string): Promise<void> {
  await nsRun(ns, 'nft', ['-f', '-'], ruleset);
}

/**
 * R2's firewall: closed to new inbound UDP on the WireGuard port, with a named drop counter; with
 * `closed-lo-accepted`, everything arriving on lo is accepted first. `open` only counts.
 */
function r2Firewall(kind: LabFirewall): string {
  const lo = kind === 'closed-lo-accepted' ? 'iifname "lo" accept' : '';
  const verdict = kind === 'open' ? 'accept' : 'drop';
  return `
table inet filter {
  counter wg_new_dropped { }
  chain input {
    type filter hook input priority 0; policy accept;
    ct state established,related accept
    ${lo}
    udp dport ${WG_PORT} ct state new counter name "wg_new_dropped" ${verdict}
  }
}
`;
}

const NAT_RULES = `
table inet nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade random
  }
}
`;

export async function createLab(options: LabOptions = {}): Promise<Lab> {
  const count = options.roamers ?? 1;
  const kind = options.wireguard ?? labWireGuardFromEnv();
  const id = labId();
  const scope = new Scope();
  try {
    const name = (role: string): string => `rwg-${id}-${role}`;
    const sw = await scope.addNamespace(name('sw'));
    await nsRun(sw, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
    await nsRun(sw, 'ip', ['link', 'set', 'br0', 'up']);
    let port = 0;
    const plug = async (ns: string, v4: string, v6: string): Promise<void> => {
      const swPort = `p${port++}`;
      await veth({ ns, name: 'wan' }, { ns: sw, name: swPort });
      await nsRun(sw, 'ip', ['link', 'set', swPort, 'master', 'br0']);
      await nsRun(ns, 'ip', ['addr', 'add', `${v4}/24`, 'dev', 'wan']);
      await nsRun(ns, 'ip', ['-6', 'addr', 'add', `${v6}/64`, 'dev', 'wan', 'nodad']);
    };

    const r2ns = await scope.addNamespace(name('r2'));
    await plug(r2ns, R2_V4, R2_V6);
    await nft(r2ns, r2Firewall(options.firewall ?? 'closed'));
    // Strict reverse-path filtering: what reconfig-wg hands to WireGuard must not depend on it.
    await nsRun(r2ns, 'sysctl', ['-qw', 'net.ipv4.conf.all.rp_filter=1', 'net.ipv4.conf.default.rp_filter=1', 'net.ipv4.conf.wan.rp_filter=1']);
    const r2wg = `rw${id}s`;
    const r2keys = await genKeyPair();
    const r2wireguard = await startServer(scope, r2ns, r2wg, r2keys.privateKey, WG_PORT, kind);

    const attackerNs = await scope.addNamespace(name('atk'));
    await plug(attackerNs, ATTACKER_V4, ATTACKER_V6);

    const roamers: Roamer[] = [];
    for (let index = 0; index < count; index++) {
      const shared = options.sharedNat === true && index > 0 ? roamers[0] : undefined;
      const natNs = shared?.natNs ?? (await scope.addNamespace(name(`nat${index}`)));
      const ns = await scope.addNamespace(name(`r1${index}`));
      const natV4 = shared?.natV4 ?? `192.0.2.${10 + index}`;
      const natV6 = shared?.natV6 ?? `2001:db8:100::${10 + index}`;
      if (shared === undefined) {
        await plug(natNs, natV4, natV6);
        // The LAN is a bridge, so several roamers can sit behind one NAT.
        await nsRun(natNs, 'ip', ['link', 'add', 'lan', 'type', 'bridge']);
        await nsRun(natNs, 'ip', ['link', 'set', 'lan', 'up']);
        await nsRun(natNs, 'ip', ['addr', 'add', '198.51.100.1/24', 'dev', 'lan']);
        await nsRun(natNs, 'ip', ['-6', 'addr', 'add', '2001:db8:1::1/64', 'dev', 'lan', 'nodad']);
        await nsRun(natNs, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
        await nft(natNs, NAT_RULES);
      }
      await veth({ ns: natNs, name: `l${index}` }, { ns, name: 'eth0' });
      await nsRun(natNs, 'ip', ['link', 'set', `l${index}`, 'master', 'lan']);
      await nsRun(ns, 'ip', ['addr', 'add', `198.51.100.${2 + index}/24`, 'dev', 'eth0']);
      await nsRun(ns, 'ip', ['-6', 'addr', 'add', `2001:db8:1::${2 + index}/64`, 'dev', 'eth0', 'nodad']);
      await nsRun(ns, 'ip', ['route', 'add', 'default', 'via', '198.51.100.1']);
      await nsRun(ns, 'ip', ['-6', 'route', 'add', 'default', 'via', '2001:db8:1::1']);

      const wg = `rw${id}c${index}`;
      const keys = await genKeyPair();
      const tunnel = `203.0.113.${10 + index}`;
      const wireguard = await createInterface(scope, ns, wg, kind);
      await wgSetPrivateKey(ns, wg, keys.privateKey, []);
      await nsRun(ns, 'ip', ['addr', 'add', `${tunnel}/24`, 'dev', wg]);
      await nsRun(ns, 'ip', ['link', 'set', wg, 'up']);
      await addServerPeer(r2ns, r2wg, { publicKey: keys.publicKey, tunnel });
      roamers.push({ index, ns, natNs, wg, ...keys, tunnel, natV4, natV6, wireguard });
    }

    const lab: Lab = {
      id,
      wireguard: kind,
      scope,
      sw,
      r2: { ns: r2ns, wg: r2wg, ...r2keys, wireguard: r2wireguard },
      attacker: { ns: attackerNs },
      roamers,
      close: () => scope.close(),
    };
    if (options.connect ?? true) {
      for (const roamer of roamers) await connectRoamer(lab, roamer, options.ipv6 ?? false);
    }
    return lab;
  } catch (error) {
    await scope.close();
    throw error;
  }
}

/**
 * Runs `fn` with a fresh lab and a private temporary directory (for pid, state and status files),
 * and removes both afterwards, also when `fn` fails.
 */
export async function withLab(options: LabOptions, fn: (lab: Lab, dir: string) => Promise<void>): Promise<void> {
  const lab = await createLab(options);
  const dir = mkdtempSync(join(tmpdir(), 'rwg-lab-'));
  try {
    await fn(lab, dir);
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Gives a roamer R2 as its peer; from then on its traffic makes it initiate handshakes. */
export async function connectRoamer(lab: Lab, roamer: Roamer, ipv6: boolean, port = WG_PORT): Promise<void> {
  const endpoint = ipv6 ? `[${R2_V6}]:${port}` : `${R2_V4}:${port}`;
  await nsRun(roamer.ns, 'wg', ['set', roamer.wg, 'peer', lab.r2.publicKey, 'endpoint', endpoint, 'allowed-ips', `${R2_TUNNEL}/32`]);
}

/** R2's view of a roamer's endpoint, or undefined when it has none. */
export async function endpointOf(lab: Lab, roamer: Roamer): Promise<string | undefined> {
  const out = await nsRun(lab.r2.ns, 'wg', ['show', lab.r2.wg, 'endpoints']);
  for (const line of out.split('\n')) {
    const [key, endpoint] = line.split('\t');
    if (key === roamer.publicKey) return endpoint === '(none)' ? undefined : endpoint;
  }
  return undefined;
}

/** One ping from the roamer to R2 through the tunnel; true if answered within `waitSeconds`. */
export async function pingOnce(roamer: Roamer, waitSeconds = 1): Promise<boolean> {
  try {
    await nsRun(roamer.ns, 'ping', ['-c', '1', '-W', String(waitSeconds), '-n', '-q', R2_TUNNEL]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Pings until one is answered, at most `timeoutMs`, each ping waiting `waitSeconds` for its
 * answer (which bounds how finely the result can be measured); returns the time it took.
 */
export async function pingUntilAnswered(roamer: Roamer, timeoutMs: number, waitSeconds = 1): Promise<number | undefined> {
  const start = performance.now();
  const answered = await waitFor(() => pingOnce(roamer, waitSeconds), timeoutMs, 0);
  return answered ? performance.now() - start : undefined;
}

/** Forgets every NAT mapping: the roamer's next packet leaves from a new random port. */
export async function natRemap(roamer: Roamer): Promise<void> {
  await nsRun(roamer.natNs, 'conntrack', ['-F']).catch(async (error: Error) => {
    // conntrack -F exits 1 with "0 flow entries" on an empty table; anything else is real.
    if (!/flow entries/.test(error.message)) throw error;
  });
}

/** Packets R2's firewall has dropped as new inbound UDP to the WireGuard port. */
export async function firewallDrops(lab: Lab): Promise<number> {
  const out = await nsRun(lab.r2.ns, 'nft', ['list', 'counter', 'inet', 'filter', 'wg_new_dropped']);
  const match = /packets (\d+)/.exec(out);
  return match ? Number(match[1]) : 0;
}

/**
 * Records the next handshake initiation that reaches R2's wire, as an on-path attacker could:
 * tcpdump in R2's namespace, one packet. Resolves once tcpdump listens.
 */
export function recordInitiation(lab: Lab): Promise<{ next(timeoutMs: number): Promise<Buffer | undefined> }> {
  return recordPackets(lab, `udp dst port ${WG_PORT} and udp[8] = 1`, 1).then((recording) => ({
    next: async (timeoutMs: number) => (await recording.next(timeoutMs))[0]?.payload,
  }));
}

export interface RecordedDatagram {
  readonly src: string;
  readonly srcPort: number;
  readonly dstPort: number;
  readonly payload: Buffer;
}

/**
 * Records the next `count` packets on R2's wire that match a tcpdump filter, as an on-path
 * observer could. Resolves once tcpdump listens; `next` waits for them (or the timeout) and
 * returns what was recorded.
 */
export async function recordPackets(lab: Lab, filter: string, count: number): Promise<{ next(timeoutMs: number): Promise<RecordedDatagram[]> }> {
  const dir = mkdtempSync(join(tmpdir(), 'rwg-rec-'));
  const file = join(dir, 'packets.pcap');
  const tcpdump = lab.scope.start(lab.r2.ns, 'tcpdump', ['-i', 'wan', '-U', '-c', String(count), '-w', file, filter]);
  const listening = await tcpdump.waitForLine((line) => line.includes('listening on'), 5000);
  if (listening === undefined) {
    await tcpdump.stop();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`tcpdump did not start: ${tcpdump.lines.join('\n')}`);
  }
  return {
    async next(timeoutMs: number): Promise<RecordedDatagram[]> {
      try {
        await tcpdump.waitForExit(timeoutMs);
        await tcpdump.stop();
        let frames: Buffer[] = [];
        try {
          frames = readPcapFile(readFileSync(file)).frames;
        } catch {
          frames = [];
        }
        return frames.flatMap((frame) => {
          const decoded = decodeFrame('ethernet', frame);
          return decoded.ok ? [{ src: decoded.value.src, srcPort: decoded.value.srcPort, dstPort: decoded.value.dstPort, payload: decoded.value.payload }] : [];
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
