/**
 * reconfig-wg: flags (meow, under the strict check) → options → daemon. Nothing else lives here;
 * cli.ts loads it.
 */
import { killRunning, LOG_FLAGS, LOG_FLAGS_HELP, runDaemonCli, usageError } from '../common/cli.js';
import { ReconfigError } from '../common/errors.js';
import { normalizeOptions as normalizeKnockOptions, type KnockOptions } from '../knock/options.js';
import type { PinholeMode } from './deliver.js';
import { IDENTITY, PROGRAM } from './identity.js';
import { defaultPidFile, normalizeOptions } from './options.js';

const help = `
  Keeps a WireGuard road-warrior peer reachable when its NAT changes, with the listen port
  closed to the world: watches the port with libpcap (before the firewall), vouches for what
  deserves it, and hands it to WireGuard itself, which roams the endpoint and answers at once:
    - a handshake initiation, verified with the interface's private key (mac1 and the Noise IK
      responder steps) and newer than any seen from that peer;
    - a data packet from a new address whose receiver index names one of the interface's live
      sessions (learned from the handshake messages the interface sends).
  No interface restart, no other peer touched. Where a packet cannot be handed over, a verified
  initiation moves the endpoint with 'wg set' instead.

  Usage
    $ reconfig-wg [-i IFACE] [options]
    $ reconfig-wg status [-i IFACE] [--json]     what the running daemon knows (see status --help)
    $ reconfig-wg check [-i IFACE]               is everything in place? item by item, with the fix
    $ reconfig-wg mesh -i IFACE --registry ADDR  on a roaming router: direct paths to the other
                                                 peers (see mesh --help)

  Options
    -i, --interface IFACE   WireGuard interface (default: the only one 'wg show interfaces' lists)
    -d, --device DEVICE     capture device (default: any)
        --once              exit 0 after the first endpoint change
        --dry-run           log the change it would make, change nothing
        --no-inject         never hand packets to WireGuard; only 'wg set' after a verified
                            initiation (roaming then waits for the peer's next handshake)
        --pinhole MODE      auto, always or never: add a conntrack entry for each packet handed
                            over, so a firewall that drops new packets on lo lets it in
                            (default: auto, decided by a self-test at start)
    -k, --kill              stop the instance running for IFACE, then exit
        --pid-file PATH     default: /run/reconfig-wg/IFACE.pid (/var/run/… without /run);
                            its directory must be writable by root (or you) alone, as for all three
        --state-file PATH   replay watermarks; default: /var/lib/reconfig-wg/IFACE.json
        --status-file PATH  JSON status, replaced at start and on every change;
                            default: /run/reconfig-wg/IFACE.json
        --persist WHERE     save each new endpoint: uci, wg-quick[=PATH] (default PATH:
                            /etc/wireguard/IFACE.conf) or none (default: uci on OpenWrt, else none)
        --hook "CMD ARGS"   run after each change, without a shell; {interface} {peer} {from} {to}
                            {host} {port} {how} are filled in, and set as RECONFIG_WG_INTERFACE …
        --hook-timeout S    stop a hook still running after S seconds (default: 10)
        --knock-port BASE   also do port-knock's job in this process: traceroute probes to
                            ports BASE.. re-arm it (one node instead of two; not with --once)
        --knock-range N     ports in the knock range (default: 100)
        --knock-cooldown S  act on a knock at most once per S seconds (default: 10)
        --registry ADDR[:PORT]
                            serve every peer's endpoint, allowed IPs and when it was last
                            proved as DNS-SD records (wgsd's layout, as dig and wgsd-client
                            read them) on ADDR, an address of IFACE
                            (IPv6 as [ADDR]:PORT; default PORT 5182), answering only
                            queries that come through IFACE from a peer's own tunnel address
        --registry-zone Z   the zone served: PTR _wireguard._udp.Z (default: wg.internal)
${LOG_FLAGS_HELP}

  Signals
    SIGTERM, SIGINT   stop (the pid file is removed)
    SIGHUP            re-read the WireGuard configuration (peers, key, listen port)
    SIGUSR1           re-read it and, with --once, arm for one more change

  Exit status
    0 done, 1 runtime failure, 2 bad usage or configuration

  Examples
    $ reconfig-wg -i wg0
    $ reconfig-wg -i wg0 --once --log-format json
    $ reconfig-wg -i wg0 --knock-port 19000
    $ reconfig-wg -i wg0 --registry 10.0.0.1
      (then, on a peer: dig @10.0.0.1 -p 5182 PTR _wireguard._udp.wg.internal)
    $ reconfig-wg -i wg0 --persist wg-quick --hook "logger -t wg {peer} moved to {to}"
    $ reconfig-wg -i wg0 -k
`;

const flags = {
  interface: { type: 'string', shortFlag: 'i', value: 'a WireGuard interface name, e.g. wg0' },
  device: { type: 'string', shortFlag: 'd', value: 'a capture device, e.g. any or eth0' },
  once: { type: 'boolean' },
  dryRun: { type: 'boolean' },
  noInject: { type: 'boolean' },
  pinhole: { type: 'string', value: 'auto, always or never' },
  kill: { type: 'boolean', shortFlag: 'k' },
  pidFile: { type: 'string', value: 'a path' },
  stateFile: { type: 'string', value: 'a path' },
  statusFile: { type: 'string', value: 'a path' },
  persist: { type: 'string', value: 'uci, wg-quick, wg-quick=PATH or none' },
  hook: { type: 'string', value: 'a command, e.g. "logger -t wg {peer} moved to {to}"' },
  hookTimeout: { type: 'string', value: 'seconds, e.g. 10' },
  registry: { type: 'string', value: 'an address of the interface, e.g. 10.0.0.1 or [2001:db8::1]:5182' },
  registryZone: { type: 'string', value: 'a DNS zone, e.g. wg.internal' },
  knockPort: { type: 'string', value: 'the first port of the knock range, e.g. 19000' },
  knockRange: { type: 'string', value: 'a number of ports, e.g. 100' },
  knockCooldown: { type: 'string', value: 'seconds, e.g. 10' },
  ...LOG_FLAGS,
} as const;

/** --knock-port and its companions → port-knock's options, validated by port-knock's rules. */
function knockOptions(values: { knockPort?: string; knockRange?: string; knockCooldown?: string; once?: boolean; dryRun?: boolean; device?: string }): KnockOptions | undefined {
  if (values.knockPort === undefined) {
    const stray = values.knockRange !== undefined ? '--knock-range' : values.knockCooldown !== undefined ? '--knock-cooldown' : undefined;
    if (stray !== undefined) throw usageError(`${stray} needs --knock-port: it shapes the knock range that --knock-port turns on.`);
    return undefined;
  }
  if (values.once) throw usageError('--once and --knock-port do not go together: --once exits after one change, and nothing would be left to knock. Run a separate port-knock for --once.');
  try {
    return normalizeKnockOptions({ basePort: values.knockPort, range: values.knockRange, cooldown: values.knockCooldown, device: values.device, dryRun: values.dryRun });
  } catch (error) {
    // port-knock's rules, in this command's words
    if (!(error instanceof ReconfigError)) throw error;
    throw new ReconfigError(error.code, error.message.replace(/(^|[ (])-p /g, '$1--knock-port ').replace(/--(range|cooldown)\b/g, '--knock-$1').replace(/lower -p\b/, 'lower --knock-port'));
  }
}

await runDaemonCli({
  program: PROGRAM,
  help,
  flags,
  // commands of their own, each a module with a main(argv) that parses its own flags with
  // readCommandArgs (meow under the strict check); loaded only when asked for. The mesh client
  // (src/mesh/, DESIGN.md) will be one more entry here, `mesh`, with its man page section and
  // completion beside status and check.
  subcommands: {
    status: async (argv) => (await import('./status-command.js')).main(argv),
    check: async (argv) => (await import('./check.js')).main(argv),
    mesh: async (argv) => (await import('../mesh/main.js')).main(argv),
  },
  options: (values) => ({
    ...normalizeOptions({
      interface: values.interface,
      device: values.device,
      once: values.once,
      dryRun: values.dryRun,
      inject: values.noInject === true ? false : undefined,
      pinhole: values.pinhole as PinholeMode | undefined,
      pidFile: values.pidFile,
      stateFile: values.stateFile,
      statusFile: values.statusFile,
      persist: values.persist,
      hook: values.hook,
      hookTimeout: values.hookTimeout,
      registry: values.registry,
      registryZone: values.registryZone,
    }),
    knock: knockOptions(values),
  }),
  kill: async (options) => {
    const { resolveInterface } = await import('../wireguard/wg.js');
    const iface = await resolveInterface(options.interface);
    return killRunning(options.pidFile ?? defaultPidFile(PROGRAM, iface), `${PROGRAM} for ${iface}`, IDENTITY);
  },
  // the daemon's modules load only when it starts: --help, -k and usage errors stay light
  start: async ({ knock, ...options }, logger) =>
    knock === undefined
      ? (await import('./daemon.js')).startReconfig(options, { logger })
      : (await import('./with-knock.js')).startWithKnock(options, knock, logger),
});
