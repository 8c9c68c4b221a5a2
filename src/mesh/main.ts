/**
 * `reconfig-wg mesh`: flags → options → the mesh client (daemon.ts); `reconfig-wg mesh status`
 * reads its status file. Loaded by src/reconfig/main.ts only when the word `mesh` comes first.
 */
import { killRunning, LOG_FLAGS, LOG_FLAGS_HELP, runDaemonCli } from '../common/cli.js';
import { IDENTITY } from '../reconfig/identity.js';
import { DEFAULT_PORT, DEFAULT_ZONE, meshFiles, normalizeMeshOptions } from './options.js';

const PROGRAM = 'reconfig-wg mesh';

const help = `
  The mesh client, for a roaming router: asks the hub's endpoint registry (reconfig-wg
  --registry, through the tunnel) for the other peers, and tries a direct path to each:
    - probe: the peer with its endpoint from the registry and a keepalive, but no allowed IPs
      (a handshake needs none, so probing never takes traffic from the hub);
    - promote: once a handshake completes, the peer gets its specific prefixes from the
      registry (within --scope), which win over the hub's aggregates;
    - watch: nothing received for two keepalives and the prefixes go again: the hub carries
      the traffic; the peer is removed for twice that, so its side falls back too (a path
      broken one way), then probed afresh; a remap the registry shows is followed at once;
    - back off (30 s, doubling up to 10 min) where no handshake completes (a NAT that maps
      per destination, a firewall).
  It never touches a peer it did not add, never writes a pre-shared key, and removes what it
  added when it stops.

  Usage
    $ reconfig-wg mesh -i IFACE --registry ADDR[:PORT] [options]
    $ reconfig-wg mesh status [-i IFACE] [--json]   each peer's path and why

  Options
    -i, --interface IFACE   WireGuard interface (default: the only one 'wg show interfaces' lists)
        --registry ADDR[:PORT]  the hub's registry, through the tunnel (port default: ${DEFAULT_PORT})
        --zone ZONE         the registry's zone (default: ${DEFAULT_ZONE})
        --scope PREFIXES    comma-separated prefixes a direct peer may be given (default: the
                            networks of IFACE's own addresses); never a default route
        --keepalive S       persistent keepalive of probed and direct peers (default: 1, 1 to 25)
        --interval S        ask the registry every S seconds (default: 5)
        --max-peers N       take at most N peers from the registry (default: 32)
    -k, --kill              stop the instance running for IFACE, then exit
        --pid-file PATH     default: /run/reconfig-wg/mesh-IFACE.pid
        --status-file PATH  default: /run/reconfig-wg/mesh-IFACE.json
        --peers-file PATH   the peers it added (removed at the next start if it was killed);
                            default: /run/reconfig-wg/mesh-IFACE.peers.json
${LOG_FLAGS_HELP}

  Signals
    SIGTERM, SIGINT   stop: the peers it added are removed
    SIGHUP            ask the registry now

  Exit status
    0 done, 1 runtime failure, 2 bad usage or configuration

  Examples
    $ reconfig-wg mesh -i wg0 --registry 203.0.113.1
    $ reconfig-wg mesh -i wg0 --registry 203.0.113.1:5182 --scope 203.0.113.0/24,198.51.100.0/24
    $ reconfig-wg mesh status -i wg0
`;

const flags = {
  interface: { type: 'string', shortFlag: 'i', value: 'a WireGuard interface name, e.g. wg0' },
  registry: { type: 'string', value: 'the registry address, e.g. 203.0.113.1 or 203.0.113.1:5182' },
  zone: { type: 'string', value: `a DNS zone, e.g. ${DEFAULT_ZONE}` },
  scope: { type: 'string', value: 'prefixes, e.g. 203.0.113.0/24' },
  keepalive: { type: 'string', value: 'seconds, e.g. 1' },
  interval: { type: 'string', value: 'seconds, e.g. 5' },
  maxPeers: { type: 'string', value: 'a number, e.g. 32' },
  kill: { type: 'boolean', shortFlag: 'k' },
  pidFile: { type: 'string', value: 'a path' },
  statusFile: { type: 'string', value: 'a path' },
  peersFile: { type: 'string', value: 'a path' },
  ...LOG_FLAGS,
} as const;

export async function main(argv: readonly string[]): Promise<number> {
  return runDaemonCli({
    program: PROGRAM,
    help,
    flags,
    argv,
    subcommands: {
      status: async (rest) => (await import('./status-command.js')).main(rest),
    },
    options: (values) =>
      normalizeMeshOptions({
        interface: values.interface,
        registry: values.kill === true && values.registry === undefined ? '127.0.0.1' : values.registry,
        zone: values.zone,
        scope: values.scope,
        keepalive: values.keepalive,
        interval: values.interval,
        maxPeers: values.maxPeers,
        pidFile: values.pidFile,
        statusFile: values.statusFile,
        peersFile: values.peersFile,
      }),
    kill: async (options) => {
      const { resolveInterface } = await import('../wireguard/wg.js');
      const iface = await resolveInterface(options.interface);
      return killRunning(meshFiles(options, iface).pidFile, `${PROGRAM} for ${iface}`, IDENTITY);
    },
    start: async (options, logger) => (await import('./daemon.js')).startMesh(options, { logger }),
  });
}
