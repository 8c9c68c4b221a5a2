/**
 * The mesh lab: a hub (R2) and roaming routers (spokes), each behind its own NAT router (or
 * two behind one), with real wireguard-go (or the kernel's, RECONFIG_WG_LAB_WG=kernel), wg, nftables
 * and conntrack, to prove the mesh client
 * (`reconfig-wg mesh`) against the registry (`reconfig-wg --registry`) that R2 serves.
 *
 *   spoke i: s(i) ── lan ── gw(i) (NAT for IPv4, stateful firewall for IPv6) ── wan ─┐
 *                                                                                  ├─ sw ── hub
 *   spoke j: s(j) ── lan ── gw(j) ───────────────────────────────────────────────┘
 *
 * Each gateway drops new inbound packets on its WAN side (input and forward), so a direct
 * path between two spokes needs both to send first (hole punching). Its IPv4 NAT is one of:
 *   - `eim`: `masquerade to :PORT` for the spoke's WireGuard port: one public port for every
 *     destination (endpoint-independent mapping); a remap moves it to another port;
 *   - `symmetric`: `masquerade random`: a new random port for each new flow, so the port the
 *     hub sees is not the port another spoke would have to reach (checked by natMappings()).
 * IPv6 is routed, not translated: each gateway's LAN is its own 2001:db8:N::/64.
 *
 * The hub forwards between spokes (ip_forward, send_redirects off) and its firewall is closed
 * to new inbound UDP on the WireGuard port; `reconfig-wg -i HUB --registry 203.0.113.1` runs
 * there, following the spokes' NAT remaps and serving the registry through the tunnel.
 * Tunnel: 203.0.113.0/24; the hub is .1, spoke i is .(10+i). Spokes route the /24 (the
 * aggregate) to the hub; direct peers get the /32s.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { RECONFIG_CLI, waitForEvent } from './daemons.js';
import { host, labId, nsRun, Scope, veth, waitFor, type LabProcess } from './netns.js';
import { labWireGuardFromEnv } from './lab.js';

export const HUB_V4 = '192.0.2.1';
export const HUB_V6 = '2001:db8:100::1';
export const HUB_TUNNEL = '203.0.113.1';
export const TUNNEL_NET = '203.0.113.0/24';
export const HUB_PORT = 51820;
const SPOKE_PORT_BASE = 51000;
const PUBLIC_PORT_BASE = 20000;

export type NatKind = 'eim' | 'symmetric';

export interface Gateway {
  readonly index: number;
  readonly ns: string;
  readonly nat: NatKind;
  readonly v4: string;
  readonly v6: string;
  readonly lan6: string;
}

export interface Spoke {
  readonly index: number;
  readonly ns: string;
  readonly gateway: Gateway;
  readonly wg: string;
  readonly publicKey: string;
  readonly tunnel: string;
  readonly listenPort: number;
  readonly lan4: string;
  readonly lan6: string;
  /** the public port its EIM NAT maps it to now (eim only) */
  publicPort: number;
}

export interface MeshLab {
  readonly id: string;
  readonly scope: Scope;
  readonly dir: string;
  readonly ipv6: boolean;
  readonly hub: { readonly ns: string; readonly wg: string; readonly publicKey: string; daemon: LabProcess | undefined };
  readonly gateways: readonly Gateway[];
  readonly spokes: readonly Spoke[];
  close(): Promise<void>;
}

export interface MeshLabOptions {
  /** one NAT kind per spoke (default: eim, eim) */
  readonly nats?: readonly NatKind[];
  /** every spoke behind the first gateway (hairpinning) */
  readonly sharedNat?: boolean;
  /** spokes reach the hub and each other over IPv6 (default false) */
  readonly ipv6?: boolean;
}

async function keyPair(): Promise<{ privateKey: string; publicKey: string }> {
  const privateKey = (await host('wg', ['genkey'])).trim();
  const publicKey = (await host('wg', ['pubkey'], `${privateKey}\n`)).trim();
  return { privateKey, publicKey };
}

async function startWireguardGo(scope: Scope, ns: string, wg: string): Promise<void> {
  for (let attempt = 1; attempt <= 3; attempt++) {
    const proc = scope.start(ns, 'wireguard-go', [wg], { WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: 'error' });
    const up = await waitFor(async () => proc.exited || (await nsRun(ns, 'wg', ['show', wg]).then(() => true, () => false)), 10_000);
    if (up && !proc.exited) return;
    await proc.stop();
  }
  throw new Error(`wireguard-go ${wg} did not come up in ${ns}`);
}

async function wgInterface(scope: Scope, dir: string, ns: string, wg: string, privateKey: string, port: number, address: string): Promise<void> {
  // The kernel's WireGuard where the lab runs on it (RECONFIG_WG_LAB_WG=kernel, as in the VM).
  if (labWireGuardFromEnv() === 'kernel') await nsRun(ns, 'ip', ['link', 'add', wg, 'type', 'wireguard']);
  else await startWireguardGo(scope, ns, wg);
  const file = join(dir, `${wg}.key`);
  const { writeFileSync } = await import('node:fs');
  writeFileSync(file, `${privateKey}\n`, { mode: 0o600 });
  await nsRun(ns, 'wg', ['set', wg, 'private-key', file, 'listen-port', String(port)]);
  rmSync(file);
  await nsRun(ns, 'ip', ['addr', 'add', address, 'dev', wg]);
  await nsRun(ns, 'ip', ['link', 'set', wg, 'up']);
}

const nft = (ns: string, rules: string): Promise<string> => nsRun(ns, 'nft', ['-f', '-'], rules);

function gatewayRules(nat: NatKind, spokes: readonly { lan4: string; listenPort: number; publicPort: number }[]): string {
  const eim = spokes.map((spoke) => `    oifname "wan" ip saddr ${spoke.lan4} udp sport ${spoke.listenPort} masquerade to :${spoke.publicPort}`).join('\n');
  return `
table inet filter {
  chain input {
    type filter hook input priority 0; policy accept;
    ct state established,related accept
    iifname "wan" ct state new counter drop
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
    ct state established,related accept
    iifname "wan" ct state new counter drop
  }
}
table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
${nat === 'eim' ? eim : ''}
    oifname "wan" masquerade${nat === 'symmetric' ? ' random' : ''}
  }
}
`;
}

export async function createMeshLab(options: MeshLabOptions = {}): Promise<MeshLab> {
  const nats = options.nats ?? ['eim', 'eim'];
  const ipv6 = options.ipv6 ?? false;
  const id = labId();
  const scope = new Scope();
  const dir = mkdtempSync(join(tmpdir(), 'rwg-mesh-'));
  const name = (role: string): string => `rwm-${id}-${role}`;
  try {
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

    // the hub
    const hubNs = await scope.addNamespace(name('hub'));
    await plug(hubNs, HUB_V4, HUB_V6);
    await nsRun(hubNs, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv4.conf.all.send_redirects=0', 'net.ipv4.conf.default.send_redirects=0']);
    await nft(hubNs, `
table inet filter {
  counter wg_new_dropped { }
  chain input {
    type filter hook input priority 0; policy accept;
    ct state established,related accept
    udp dport ${HUB_PORT} ct state new counter name "wg_new_dropped" drop
  }
}
`);
    const hubWg = `rm${id}h`;
    const hubKeys = await keyPair();
    await wgInterface(scope, dir, hubNs, hubWg, hubKeys.privateKey, HUB_PORT, `${HUB_TUNNEL}/24`);

    // gateways: one per spoke, or one for all
    const gatewayCount = options.sharedNat === true ? 1 : nats.length;
    const gateways: Gateway[] = [];
    const spokesOf = (g: number): number[] => nats.map((_, i) => i).filter((i) => (options.sharedNat === true ? true : i === g));
    const spokes: Spoke[] = [];
    for (let g = 0; g < gatewayCount; g++) {
      const gw = await scope.addNamespace(name(`gw${g}`));
      const gateway: Gateway = { index: g, ns: gw, nat: nats[g] ?? 'eim', v4: `192.0.2.${10 + g}`, v6: `2001:db8:100::${10 + g}`, lan6: `2001:db8:${g + 1}::` };
      gateways.push(gateway);
      await plug(gw, gateway.v4, gateway.v6);
      await nsRun(gw, 'ip', ['link', 'add', 'lan', 'type', 'bridge']);
      await nsRun(gw, 'ip', ['link', 'set', 'lan', 'up']);
      await nsRun(gw, 'ip', ['addr', 'add', '198.51.100.1/24', 'dev', 'lan']);
      await nsRun(gw, 'ip', ['-6', 'addr', 'add', `${gateway.lan6}1/64`, 'dev', 'lan', 'nodad']);
      await nsRun(gw, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
      for (const i of spokesOf(g)) {
        const ns = await scope.addNamespace(name(`s${i}`));
        await veth({ ns: gw, name: `l${i}` }, { ns, name: 'eth0' });
        await nsRun(gw, 'ip', ['link', 'set', `l${i}`, 'master', 'lan']);
        const lan4 = `198.51.100.${2 + i}`;
        const lan6 = `${gateway.lan6}${2 + i}`;
        await nsRun(ns, 'ip', ['addr', 'add', `${lan4}/24`, 'dev', 'eth0']);
        await nsRun(ns, 'ip', ['-6', 'addr', 'add', `${lan6}/64`, 'dev', 'eth0', 'nodad']);
        await nsRun(ns, 'ip', ['route', 'add', 'default', 'via', '198.51.100.1']);
        await nsRun(ns, 'ip', ['-6', 'route', 'add', 'default', 'via', `${gateway.lan6}1`]);
        const keys = await keyPair();
        const wg = `rm${id}s${i}`;
        const tunnel = `203.0.113.${10 + i}`;
        const listenPort = SPOKE_PORT_BASE + i;
        await wgInterface(scope, dir, ns, wg, keys.privateKey, listenPort, `${tunnel}/24`);
        spokes.push({ index: i, ns, gateway, wg, publicKey: keys.publicKey, tunnel, listenPort, lan4, lan6, publicPort: PUBLIC_PORT_BASE + 100 * i });
      }
      await nft(gw, gatewayRules(gateway.nat, spokes.filter((s) => s.gateway === gateway)));
    }
    // IPv6 is routed: every other box learns each gateway's LAN
    for (const gateway of gateways) {
      for (const ns of [hubNs, ...gateways.filter((other) => other !== gateway).map((other) => other.ns)]) {
        await nsRun(ns, 'ip', ['-6', 'route', 'add', `${gateway.lan6}/64`, 'via', gateway.v6]);
      }
    }
    // the hub knows each spoke by its tunnel address; each spoke has the hub with the aggregate
    for (const spoke of spokes) {
      await nsRun(hubNs, 'wg', ['set', hubWg, 'peer', spoke.publicKey, 'allowed-ips', `${spoke.tunnel}/32`]);
      const endpoint = ipv6 ? `[${HUB_V6}]:${HUB_PORT}` : `${HUB_V4}:${HUB_PORT}`;
      await nsRun(spoke.ns, 'wg', ['set', spoke.wg, 'peer', hubKeys.publicKey, 'endpoint', endpoint, 'allowed-ips', TUNNEL_NET, 'persistent-keepalive', '25']);
    }
    const lab: MeshLab = {
      id,
      scope,
      dir,
      ipv6,
      hub: { ns: hubNs, wg: hubWg, publicKey: hubKeys.publicKey, daemon: undefined },
      gateways,
      spokes,
      close: async () => {
        await scope.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
    return lab;
  } catch (error) {
    await scope.close();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/** Runs `fn` with a fresh mesh lab, removed afterwards whatever happens. */
export async function withMeshLab(options: MeshLabOptions, fn: (lab: MeshLab) => Promise<void>): Promise<void> {
  const lab = await createMeshLab(options);
  try {
    await fn(lab);
  } finally {
    await lab.close();
  }
}

/** reconfig-wg on the hub, with the registry on its tunnel address; waits for `listening`. */
export async function startHub(lab: MeshLab): Promise<LabProcess> {
  const proc = lab.scope.start(lab.hub.ns, process.execPath, [
    RECONFIG_CLI, '--log-format', 'json', '-i', lab.hub.wg, '--registry', HUB_TUNNEL,
    '--pid-file', join(lab.dir, 'hub.pid'), '--state-file', join(lab.dir, 'hub-state.json'), '--status-file', join(lab.dir, 'hub-status.json'),
  ]);
  if ((await waitForEvent(proc, 'listening', 20_000)) === undefined) throw new Error(`reconfig-wg did not start on the hub:\n${proc.lines.join('\n')}`);
  lab.hub.daemon = proc;
  return proc;
}

/** Each spoke pings the hub until answered: the hub (and so the registry) knows its endpoint. */
export async function connectSpokes(lab: MeshLab): Promise<void> {
  for (const spoke of lab.spokes) {
    const ok = await waitFor(() => ping(spoke, HUB_TUNNEL, 1).then((r) => r.answered), 15_000, 0);
    if (!ok) throw new Error(`spoke ${spoke.index} does not reach the hub`);
  }
}

/** `reconfig-wg mesh` on a spoke; waits for `mesh.started`. */
export async function startMeshClient(lab: MeshLab, spoke: Spoke, extra: readonly string[] = []): Promise<LabProcess> {
  const files = ['--pid-file', join(lab.dir, `mesh${spoke.index}.pid`), '--status-file', join(lab.dir, `mesh${spoke.index}.json`), '--peers-file', join(lab.dir, `mesh${spoke.index}.peers.json`)];
  const proc = lab.scope.start(spoke.ns, process.execPath, [RECONFIG_CLI, 'mesh', '--log-format', 'json', '-i', spoke.wg, '--registry', HUB_TUNNEL, ...files, ...extra]);
  if ((await waitForEvent(proc, 'mesh.started', 20_000)) === undefined) throw new Error(`reconfig-wg mesh did not start on spoke ${spoke.index}:\n${proc.lines.join('\n')}`);
  return proc;
}

export function meshStatusFile(lab: MeshLab, spoke: Spoke): string {
  return join(lab.dir, `mesh${spoke.index}.json`);
}

export interface PingResult {
  readonly answered: boolean;
  readonly ttl: number | undefined;
  readonly rttMs: number | undefined;
}

export async function ping(spoke: Spoke, target: string, waitSeconds = 1): Promise<PingResult> {
  try {
    const out = await nsRun(spoke.ns, 'ping', ['-c', '1', '-W', String(waitSeconds), '-n', target]);
    const ttl = /ttl=(\d+)/.exec(out);
    const rtt = /time=([\d.]+) ms/.exec(out);
    return { answered: true, ttl: ttl ? Number(ttl[1]) : undefined, rttMs: rtt ? Number(rtt[1]) : undefined };
  } catch {
    return { answered: false, ttl: undefined, rttMs: undefined };
  }
}

export interface PingSeries {
  readonly sent: number;
  readonly replies: readonly { readonly seq: number; readonly ttl: number; readonly rttMs: number; readonly at: number }[];
}

/**
 * `ping -i INTERVAL -c COUNT -D` from a spoke: every reply with its sequence, TTL, RTT and the
 * time it came (epoch ms), so gaps and TTL changes can be read afterwards.
 */
export async function pingSeries(spoke: Spoke, target: string, count: number, intervalSeconds: number): Promise<PingSeries> {
  // ping exits 1 when a reply was missing: its output is what counts
  const run = await execa('ip', ['netns', 'exec', spoke.ns, 'ping', '-n', '-D', '-i', String(intervalSeconds), '-c', String(count), '-W', '1', target], {
    reject: false,
    timeout: Math.ceil(count * intervalSeconds * 1000 + 10_000),
  });
  const result = String(run.stdout);
  const replies: { seq: number; ttl: number; rttMs: number; at: number }[] = [];
  for (const match of result.matchAll(/\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+) ttl=(\d+) time=([\d.]+) ms/g)) {
    replies.push({ at: Number(match[1]) * 1000, seq: Number(match[2]), ttl: Number(match[3]), rttMs: Number(match[4]) });
  }
  return { sent: count, replies };
}

/** The hub's transfer counters for a spoke: [received, sent] bytes. */
export async function hubTransfer(lab: MeshLab, spoke: Spoke): Promise<[number, number]> {
  const out = await nsRun(lab.hub.ns, 'wg', ['show', lab.hub.wg, 'transfer']);
  for (const line of out.split('\n')) {
    const [key, rx, tx] = line.split('\t');
    if (key === spoke.publicKey) return [Number(rx), Number(tx)];
  }
  return [0, 0];
}

/** A spoke's peers as wg shows them: key → allowed IPs. */
export async function spokePeers(spoke: Spoke): Promise<Map<string, string>> {
  const out = await nsRun(spoke.ns, 'wg', ['show', spoke.wg, 'allowed-ips']);
  const peers = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [key, allowed] = line.split('\t');
    if (key) peers.set(key, allowed ?? '');
  }
  return peers;
}

/** The public ports a gateway's NAT gave a spoke's WireGuard port, by destination `addr:port`. */
export async function natMappings(spoke: Spoke): Promise<Map<string, number>> {
  const out = await nsRun(spoke.gateway.ns, 'conntrack', ['-L', '-p', 'udp', '-s', spoke.lan4]).catch(() => '');
  const mappings = new Map<string, number>();
  for (const line of out.split('\n')) {
    // original: src=LAN dst=REMOTE sport=LISTEN dport=RPORT  reply: src=REMOTE dst=PUBLIC sport=RPORT dport=MAPPED
    const m = /src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+) .*?src=\S+ dst=\S+ sport=\d+ dport=(\d+)/.exec(line);
    if (m && Number(m[3]) === spoke.listenPort) mappings.set(`${m[2]}:${m[4]}`, Number(m[5]));
  }
  return mappings;
}

/**
 * The spoke's NAT remaps it: an EIM NAT gives it a new public port (the rule is replaced and
 * its flows forgotten), a symmetric one forgets its flows (the next get new random ports).
 */
export async function remapSpoke(lab: MeshLab, spoke: Spoke): Promise<void> {
  const gw = spoke.gateway;
  if (gw.nat === 'eim') {
    spoke.publicPort += 1;
    const nat = gatewayRules(gw.nat, lab.spokes.filter((other) => other.gateway === gw)).split('table ip nat')[1]!;
    await nft(gw.ns, `flush table ip nat\ntable ip nat${nat}`);
  }
  await nsRun(gw.ns, 'conntrack', ['-D', '-p', 'udp', '-s', spoke.lan4]).catch(() => '');
}
