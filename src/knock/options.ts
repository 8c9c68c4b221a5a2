/**
 * Options of the port-knock daemon, validated and with every default applied in one place.
 */
import { usageError as usage } from '../common/errors.js';
import { defaultPidFile, validateInterfaceName } from '../reconfig/options.js';
import { PROGRAM } from './identity.js';
import { parseCommand } from './command.js';

export interface KnockOptions {
  /** first port of the range the probes are sent to */
  readonly basePort: number;
  /** how many ports, from basePort on */
  readonly range: number;
  /** -c split into argv, placeholders still in; undefined: re-arm reconfig-wg */
  readonly command: readonly string[] | undefined;
  /** WireGuard interface to re-arm (without -c); undefined: the only one there is */
  readonly interface: string | undefined;
  readonly device: string;
  /** at most one action per this period */
  readonly cooldownMs: number;
  /** log what a knock would do, do nothing */
  readonly dryRun: boolean;
  /** undefined: derived from the base port */
  readonly pidFile: string | undefined;
  /** without -c: reconfig-wg's pid file, when it is not the default for the interface */
  readonly reconfigPidFile: string | undefined;
  /** quiet time after which the same source knocks again */
  readonly windowMs: number;
  /** how long a previous run gets between TERM and KILL */
  readonly graceMs: number;
}

export interface KnockInput {
  readonly basePort?: string | number;
  readonly range?: string | number;
  readonly command?: string;
  readonly interface?: string;
  readonly device?: string;
  readonly cooldown?: string | number;
  readonly dryRun?: boolean;
  readonly pidFile?: string;
  readonly reconfigPidFile?: string;
  readonly windowMs?: number;
  readonly graceMs?: number;
}

export const DEFAULTS = {
  basePort: 19000,
  range: 100,
  device: 'any',
  cooldownS: 10,
  // longer than traceroute's default 5 s wait for an answer, so the probes of a last hop that
  // stays silent (a firewall that drops them) still collapse into one knock
  windowMs: 6000,
  graceMs: 5000,
} as const;

const MAX_PORT = 65535;
const MAX_COOLDOWN_S = 86_400;

function wholeNumber(value: string | number): number | undefined {
  const text = String(value).trim();
  return /^\d{1,6}$/.test(text) ? Number(text) : undefined;
}

/** One instance per port range: the pid file is named after its first port. */
export function knockPidFile(options: Pick<KnockOptions, 'pidFile' | 'basePort'>): string {
  return options.pidFile ?? defaultPidFile(PROGRAM, String(options.basePort));
}

export function normalizeOptions(input: KnockInput): KnockOptions {
  const basePort = wholeNumber(input.basePort ?? DEFAULTS.basePort);
  if (basePort === undefined || basePort < 1 || basePort > MAX_PORT) {
    throw usage(`-p ${String(input.basePort)} is not a port; give a whole number from 1 to ${MAX_PORT}.`);
  }
  const range = wholeNumber(input.range ?? DEFAULTS.range);
  if (range === undefined || range < 1) {
    throw usage(`--range ${String(input.range)} is not a number of ports; give a whole number of at least 1.`);
  }
  const last = basePort + range - 1;
  if (last > MAX_PORT) {
    throw usage(`--range ${range} from port ${basePort} would end at port ${last}; the range must end at ${MAX_PORT} or below (--range ${MAX_PORT - basePort + 1} at most, or a lower -p).`);
  }
  const cooldownText = String(input.cooldown ?? DEFAULTS.cooldownS).trim();
  const cooldownS = /^\d{1,6}(\.\d{1,3})?$/.test(cooldownText) ? Number(cooldownText) : Number.NaN;
  if (!(cooldownS >= 0 && cooldownS <= MAX_COOLDOWN_S)) {
    throw usage(`--cooldown ${String(input.cooldown)} is not a duration; give seconds from 0 to ${MAX_COOLDOWN_S}.`);
  }
  let command: string[] | undefined;
  if (input.command !== undefined) {
    const parsed = parseCommand(input.command);
    if (!parsed.ok) throw usage(`-c ${parsed.reason}.`);
    command = parsed.value;
    if (input.interface !== undefined) {
      throw usage('-i and -c do not go together: -c runs your command instead of re-arming reconfig-wg for an interface.');
    }
    if (input.reconfigPidFile !== undefined) {
      throw usage('--reconfig-pid-file and -c do not go together: -c runs your command instead of re-arming reconfig-wg.');
    }
  }
  const device = input.device ?? DEFAULTS.device;
  if (device.length === 0) throw usage('The capture device (-d) must not be empty; use -d any to capture on all.');
  return {
    basePort,
    range,
    command,
    interface: input.interface === undefined ? undefined : validateInterfaceName(input.interface),
    device,
    cooldownMs: cooldownS * 1000,
    dryRun: input.dryRun ?? false,
    pidFile: input.pidFile,
    reconfigPidFile: input.reconfigPidFile,
    windowMs: input.windowMs ?? DEFAULTS.windowMs,
    graceMs: input.graceMs ?? DEFAULTS.graceMs,
  };
}
