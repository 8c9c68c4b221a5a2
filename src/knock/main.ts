/**
 * port-knock: flags (meow, under the strict check) → options → daemon. Nothing else lives here;
 * cli.ts loads it.
 */
import { killRunning, LOG_FLAGS, LOG_FLAGS_HELP, runDaemonCli } from '../common/cli.js';
import { IDENTITY, PROGRAM } from './identity.js';
import { DEFAULTS, knockPidFile, normalizeOptions } from './options.js';

const help = `
  Watches a port range for traceroute probes that arrive as the last hop (IPv4 TTL or IPv6
  hop limit 1) and turns one traceroute into one knock: it re-arms reconfig-wg, or runs your
  command. The roaming side needs no client, only traceroute:
    traceroute -p ${DEFAULTS.basePort} r2.example.org        (UDP; also BusyBox and macOS)
    traceroute -6 -p ${DEFAULTS.basePort} r2.example.org     (UDP over IPv6)
    traceroute -T -p ${DEFAULTS.basePort} r2.example.org     (TCP SYN, where UDP is dropped)

  Usage
    $ port-knock [-p BASE] [--range N] [-c COMMAND | -i IFACE] [options]

  Options
    -p, --port BASE         first port of the range (default: ${DEFAULTS.basePort})
        --range N           ports in the range, BASE to BASE+N-1 (default: ${DEFAULTS.range})
    -c, --command COMMAND   run COMMAND on a knock instead of re-arming reconfig-wg; a run
                            still alive is stopped first (TERM, then KILL)
    -i, --interface IFACE   WireGuard interface whose reconfig-wg a knock re-arms (default:
                            the only one 'wg show interfaces' lists); not with -c
    -d, --device DEVICE     capture device (default: ${DEFAULTS.device})
        --cooldown S        act at most once per S seconds, whoever knocks (default: ${DEFAULTS.cooldownS})
        --dry-run           log what a knock would do, do nothing
    -k, --kill              stop the instance running for BASE, then exit
        --pid-file PATH     default: /run/port-knock/BASE.pid (/var/run/… without /run); its
                            directory must be writable by root (or you) alone
        --reconfig-pid-file PATH
                            without -c: the pid file of the reconfig-wg to re-arm, when it
                            runs with its own --pid-file (default: reconfig-wg's default)
${LOG_FLAGS_HELP}

  COMMAND
    Split into words like sh does (quotes and backslashes), then run without a shell: no
    expansions, no operators, no redirections (put those in a script). In each word
    {src}, {port}, {proto} (udp, tcp), {family} (4, 6) and {ttl} become the knock's values;
    a value always stays inside its word. The command's output goes to the log.

  Without -c
    A running reconfig-wg for IFACE (found through its pid file) gets SIGUSR1; when none
    runs, 'reconfig-wg --once -i IFACE' is started. port-knock stops the reconfig-wg it
    started when it stops itself, and never one it did not start.

  Signals
    SIGTERM, SIGINT   stop (a command still running is stopped; the pid file is removed)
    SIGHUP            reopen the capture
    SIGUSR1           end the cooldown: the next knock acts at once

  Exit status
    0 done, 1 runtime failure, 2 bad usage or configuration

  Examples
    $ port-knock -i wg0
    $ port-knock -p 33434 --range 50 -c "logger -t knock 'traceroute from {src}'"
    $ port-knock -k
`;

const flags = {
  port: { type: 'string', shortFlag: 'p', value: 'the first port of the range, e.g. 19000' },
  range: { type: 'string', value: 'a number of ports, e.g. 100' },
  command: { type: 'string', shortFlag: 'c', value: 'a command line, quoted' },
  interface: { type: 'string', shortFlag: 'i', value: 'a WireGuard interface name, e.g. wg0' },
  device: { type: 'string', shortFlag: 'd', value: 'a capture device, e.g. any or eth0' },
  cooldown: { type: 'string', value: 'seconds, e.g. 10' },
  dryRun: { type: 'boolean' },
  kill: { type: 'boolean', shortFlag: 'k' },
  pidFile: { type: 'string', value: 'a path' },
  reconfigPidFile: { type: 'string', value: 'a path' },
  ...LOG_FLAGS,
} as const;

await runDaemonCli({
  program: PROGRAM,
  help,
  flags,
  options: (values) =>
    normalizeOptions({
      basePort: values.port,
      range: values.range,
      command: values.command,
      interface: values.interface,
      device: values.device,
      cooldown: values.cooldown,
      dryRun: values.dryRun,
      pidFile: values.pidFile,
      reconfigPidFile: values.reconfigPidFile,
    }),
  kill: (options) => killRunning(knockPidFile(options), `${PROGRAM} for port ${options.basePort}`, IDENTITY),
  // the daemon's modules load only when it starts: --help, -k and usage errors stay light
  start: async (options, logger) => (await import('./daemon.js')).startKnock(options, { logger }),
});
