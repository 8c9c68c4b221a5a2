#!/usr/bin/env node
/**
 * reconfig-wg: flags → options → daemon. Nothing else lives here.
 */
import { readFileSync } from 'node:fs';
import meow from 'meow';
import { killRunning, LOG_FLAGS, runDaemonCli } from '../common/cli.js';
import { resolveInterface } from '../wireguard/wg.js';
import { PROGRAM, startReconfig } from './daemon.js';
import { defaultPidFile, normalizeOptions } from './options.js';

// `reconfig-wg status` and `reconfig-wg check` are commands of their own, with their own flags.
const subcommand = process.argv[2];
if (subcommand === 'status' || subcommand === 'check') {
  const command = subcommand === 'status' ? await import('./status-command.js') : await import('./check.js');
  process.exit(await command.main(process.argv.slice(3)));
}

const help = `
  Keeps a WireGuard road-warrior peer reachable when its NAT changes: watches the interface's
  listen port with libpcap (before the firewall), verifies each handshake initiation with the
  interface's private key (mac1 and the Noise IK responder steps), and points only the peer
  that sent it at its new address, with no interface restart.

  Usage
    $ reconfig-wg [-i IFACE] [options]
    $ reconfig-wg status [-i IFACE] [--json]     what the running daemon knows (see status --help)
    $ reconfig-wg check [-i IFACE]               is everything in place? item by item, with the fix

  Options
    -i, --interface IFACE   WireGuard interface (default: the only one 'wg show interfaces' lists)
    -d, --device DEVICE     capture device (default: any)
        --once              exit 0 after the first endpoint change
        --dry-run           log the change it would make, change nothing
    -k, --kill              stop the instance running for IFACE, then exit
        --pid-file PATH     default: /run/reconfig-wg-IFACE.pid (/tmp when /run is not writable)
        --state-file PATH   replay watermarks; default: /var/lib/reconfig-wg/IFACE.json
        --status-file PATH  JSON status, replaced at start and on every change;
                            default: /run/reconfig-wg/IFACE.json
        --persist WHERE     save each new endpoint: uci, wg-quick[=PATH] (default PATH:
                            /etc/wireguard/IFACE.conf) or none (default: uci on OpenWrt, else none)
        --hook "CMD ARGS"   run after each change, without a shell; {interface} {peer} {from} {to}
                            {host} {port} {how} are filled in, and set as RECONFIG_WG_INTERFACE …
        --hook-timeout S    stop a hook still running after S seconds (default: 10)
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
    $ reconfig-wg -i wg0 --persist wg-quick --hook "logger -t wg {peer} moved to {to}"
    $ reconfig-wg -i wg0 -k
`;

const cli = meow(help, {
  importMeta: import.meta,
  description: false,
  allowUnknownFlags: false,
  autoHelp: true,
  autoVersion: true,
  flags: {
    interface: { type: 'string', shortFlag: 'i' },
    device: { type: 'string', shortFlag: 'd' },
    once: { type: 'boolean', default: false },
    dryRun: { type: 'boolean', default: false },
    kill: { type: 'boolean', shortFlag: 'k', default: false },
    pidFile: { type: 'string' },
    stateFile: { type: 'string' },
    statusFile: { type: 'string' },
    persist: { type: 'string' },
    hook: { type: 'string' },
    hookTimeout: { type: 'number' },
    ...LOG_FLAGS,
  },
});

await runDaemonCli({
  program: PROGRAM,
  cli,
  options: () =>
    normalizeOptions({
      interface: cli.flags.interface,
      device: cli.flags.device,
      once: cli.flags.once,
      dryRun: cli.flags.dryRun,
      pidFile: cli.flags.pidFile,
      stateFile: cli.flags.stateFile,
      statusFile: cli.flags.statusFile,
      persist: cli.flags.persist,
      hook: cli.flags.hook,
      hookTimeout: cli.flags.hookTimeout,
    }),
  kill: async (options) => {
    const iface = await resolveInterface(options.interface);
    return killRunning(options.pidFile ?? defaultPidFile(PROGRAM, iface), `${PROGRAM} for ${iface}`);
  },
  start: (options, logger) => startReconfig(options, { logger }),
});
