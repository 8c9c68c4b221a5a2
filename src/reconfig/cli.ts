#!/usr/bin/env node
/**
 * reconfig-wg: flags → options → daemon. Nothing else lives here.
 */
import { readFileSync } from 'node:fs';
import meow from 'meow';
import { killRunning, LOG_FLAGS, runDaemonCli } from '../common/cli.js';
import { resolveInterface } from '../wireguard/wg.js';
import { PROGRAM, startReconfig } from './daemon.js';
import type { PinholeMode } from './deliver.js';
import { defaultPidFile, normalizeOptions } from './options.js';

// `reconfig-wg status` and `reconfig-wg check` are commands of their own, with their own flags.
const subcommand = process.argv[2];
if (subcommand === 'status' || subcommand === 'check') {
  const command = subcommand === 'status' ? await import('./status-command.js') : await import('./check.js');
  process.exit(await command.main(process.argv.slice(3)));
}

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
    inject: { type: 'boolean', default: true },
    pinhole: { type: 'string' },
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
      inject: cli.flags.inject,
      pinhole: cli.flags.pinhole as PinholeMode | undefined,
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
