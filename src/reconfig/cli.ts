#!/usr/bin/env node
/**
 * reconfig-wg: flags → options → daemon. Nothing else lives here.
 */
import { killRunning, LOG_FLAGS, runDaemonCli } from '../common/cli.js';
import { IDENTITY, PROGRAM } from './identity.js';
import { defaultPidFile, normalizeOptions } from './options.js';

const help = `
  Keeps a WireGuard road-warrior peer reachable when its NAT changes: watches the interface's
  listen port with libpcap (before the firewall), verifies each handshake initiation with the
  interface's private key (mac1 and the Noise IK responder steps), and points only the peer
  that sent it at its new address, with no interface restart.

  Usage
    $ reconfig-wg [-i IFACE] [options]

  Options
    -i, --interface IFACE   WireGuard interface (default: the only one 'wg show interfaces' lists)
    -d, --device DEVICE     capture device (default: any)
        --once              exit 0 after the first endpoint change
        --dry-run           log the change it would make, change nothing
    -k, --kill              stop the instance running for IFACE, then exit
        --pid-file PATH     default: /run/reconfig-wg-IFACE.pid (/tmp when /run is not writable)
        --state-file PATH   replay watermarks; default: /var/lib/reconfig-wg/IFACE.json
        --log-format F      pretty or json (default: pretty on a terminal, json otherwise)
        --log-level L       trace, debug, info, warn, error, fatal or silent (default: info)
    -h, --help              show this help
        --version           print the version

  Signals
    SIGTERM, SIGINT   stop (the pid file is removed)
    SIGHUP            re-read the WireGuard configuration (peers, key, listen port)
    SIGUSR1           re-read it and, with --once, arm for one more change

  Exit status
    0 done, 1 runtime failure, 2 bad usage or configuration

  Examples
    $ reconfig-wg -i wg0
    $ reconfig-wg -i wg0 --once --log-format json
    $ reconfig-wg -i wg0 -k
`;

const flags = {
  interface: { type: 'string', shortFlag: 'i', value: 'a WireGuard interface name, e.g. wg0' },
  device: { type: 'string', shortFlag: 'd', value: 'a capture device, e.g. any or eth0' },
  once: { type: 'boolean' },
  dryRun: { type: 'boolean' },
  kill: { type: 'boolean', shortFlag: 'k' },
  pidFile: { type: 'string', value: 'a path' },
  stateFile: { type: 'string', value: 'a path' },
  ...LOG_FLAGS,
} as const;

// ps, top and the pid-file check in /proc see the command's name, not node's arguments
process.title = PROGRAM;

await runDaemonCli({
  program: PROGRAM,
  help,
  flags,
  options: (values) =>
    normalizeOptions({
      interface: values.interface,
      device: values.device,
      once: values.once,
      dryRun: values.dryRun,
      pidFile: values.pidFile,
      stateFile: values.stateFile,
    }),
  kill: async (options) => {
    const { resolveInterface } = await import('../wireguard/wg.js');
    const iface = await resolveInterface(options.interface);
    return killRunning(options.pidFile ?? defaultPidFile(PROGRAM, iface), `${PROGRAM} for ${iface}`, IDENTITY);
  },
  // the daemon's modules load only when it starts: --help, -k and usage errors stay light
  start: async (options, logger) => (await import('./daemon.js')).startReconfig(options, { logger }),
});
