/**
 * Knock → action. Every knock is logged, a few lines a second per action at most (a flood of
 * spoofed sources is summarised: log-limit.ts); the cooldown bounds how often any of them acts.
 *
 * With -c, a knock restarts the command: the previous run, if still alive, is stopped by pid
 * before the new one starts, so at most one run exists at a time. Without -c, a knock re-arms
 * reconfig-wg: a running instance gets SIGUSR1, and when none runs one is started with --once.
 * What port-knock started, port-knock stops when it stops; an instance it only signalled is
 * someone else's and is left alone.
 */
import type { Logger } from '../common/log.js';
import { LogLimiter } from '../common/log-limit.js';
import type { ProgramIdentity } from '../common/proc.js';
import { startCommand, type CommandRun } from '../common/child.js';
import { substitute } from './command.js';
import { Cooldown } from './cooldown.js';
import type { Knock } from './detector.js';
import { findReconfig, reconfigArgv, reconfigPidFile } from './rearm.js';

export interface RunnerOptions {
  /** -c split into argv; undefined: re-arm reconfig-wg for `interface` */
  readonly command: readonly string[] | undefined;
  readonly interface: string | undefined;
  readonly cooldownMs: number;
  readonly dryRun: boolean;
  readonly graceMs: number;
}

export interface RunnerDeps {
  readonly logger: Logger;
  readonly options: RunnerOptions;
  /** monotonic clock for the cooldown */
  readonly now?: () => number;
  /** where reconfig-wg's pid file is; its own default when absent */
  readonly reconfigPidFile?: string;
  /** argv of the reconfig-wg to start; `reconfig-wg --once -i IFACE` when absent */
  readonly reconfigArgv?: readonly string[];
  /** how /proc shows the reconfig-wg to re-arm; this installation's when absent (tests play it) */
  readonly reconfigIdentity?: ProgramIdentity;
}

type Action =
  | { readonly kind: 'cooldown'; readonly retryInS: number }
  | { readonly kind: 'command'; readonly argv: readonly string[] }
  | { readonly kind: 'rearm'; readonly pid: number }
  | { readonly kind: 'start'; readonly argv: readonly string[] }
  /** the reconfig-wg we started is still starting up, and so is armed already */
  | { readonly kind: 'armed'; readonly pid: number };

export class Runner {
  runs = 0;
  rearms = 0;
  cooledDown = 0;

  private readonly cooldown: Cooldown;
  /** knock lines, per action: a flood of knocks in cooldown is a few lines and a count */
  private readonly knockLog: LogLimiter;
  private current: CommandRun | undefined;
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly deps: RunnerDeps) {
    this.cooldown = new Cooldown(deps.options.cooldownMs, deps.now);
    this.knockLog = new LogLimiter(deps.logger, deps.now === undefined ? {} : { now: deps.now });
  }

  /** `capturedAt`: when the probe reached us (epoch ms), for the latency in the log. */
  knock(knock: Knock, capturedAt: number): void {
    if (this.stopped) return;
    const action = this.decide(knock);
    const { dryRun } = this.deps.options;
    this.knockLog.log(
      'info',
      `knock.${action.kind}`,
      { event: 'knock', ...knock, capturedAt, action: action.kind, ...details(action), ...(dryRun ? { dryRun } : {}) },
      `knock from ${knock.src} (${knock.proto}/IPv${knock.family} port ${knock.port}): ${describe(action)}${dryRun ? ' (dry run: nothing done)' : ''}`,
    );
    if (dryRun) return;
    if (action.kind === 'command' || action.kind === 'start') {
      this.enqueue(() => this.restart(action.argv, knock, capturedAt));
    } else if (action.kind === 'rearm') {
      this.signal(action.pid, capturedAt);
    }
  }

  private decide(knock: Knock): Action {
    if (!this.cooldown.take()) {
      this.cooledDown++;
      return { kind: 'cooldown', retryInS: Math.ceil(this.cooldown.remainingMs() / 1000) };
    }
    const { command } = this.deps.options;
    if (command !== undefined) {
      return { kind: 'command', argv: substitute(command, { src: knock.src, port: String(knock.port), proto: knock.proto, family: String(knock.family), ttl: String(knock.ttl) }) };
    }
    const iface = this.deps.options.interface ?? '';
    const state = findReconfig(this.deps.reconfigPidFile ?? reconfigPidFile(iface), this.deps.reconfigIdentity);
    if (state.kind === 'running') return { kind: 'rearm', pid: state.pid };
    // ours, started by an earlier knock and not yet far enough to have written its pid file
    // (nor to handle SIGUSR1): it reads the configuration as it starts, so it is armed already
    if (this.current?.alive()) return { kind: 'armed', pid: this.current.pid };
    return { kind: 'start', argv: this.deps.reconfigArgv ?? reconfigArgv(iface) };
  }

  private signal(pid: number, capturedAt: number): void {
    try {
      process.kill(pid, 'SIGUSR1');
      this.rearms++;
      this.deps.logger.info({ event: 'rearm.sent', pid, interface: this.deps.options.interface, latencyMs: latency(capturedAt) }, `sent SIGUSR1 to reconfig-wg (pid ${pid})`);
    } catch (error) {
      this.deps.logger.error({ event: 'error', code: 'E_COMMAND', pid }, `cannot signal reconfig-wg (pid ${pid}): ${(error as Error).message}`);
    }
  }

  private async restart(argv: readonly string[], knock: Knock, capturedAt: number): Promise<void> {
    if (this.stopped) return;
    if (this.current?.alive()) {
      this.deps.logger.info({ event: 'command.stopping', pid: this.current.pid }, `stopping the previous run (pid ${this.current.pid})`);
      await this.current.stop(this.deps.options.graceMs);
    }
    if (this.stopped) return;
    this.current = await startCommand(argv, this.deps.logger, { fields: { src: knock.src }, capturedAt });
    if (this.current !== undefined) this.runs++;
  }

  private enqueue(task: () => Promise<void>): void {
    this.queue = this.queue.then(task).catch((error: unknown) => {
      this.deps.logger.error({ event: 'error', code: 'E_COMMAND' }, (error as Error).message);
    });
  }

  /** Ends the cooldown: the next knock acts at once. */
  rearm(): void {
    this.cooldown.reset();
  }

  counters(): Record<string, number> {
    return { runs: this.runs, rearms: this.rearms, cooledDown: this.cooledDown };
  }

  /** Lets a start in progress finish, then stops the run we started, if it is still alive. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.knockLog.stop();
    await this.queue;
    await this.current?.stop(this.deps.options.graceMs);
  }
}

function latency(capturedAt: number): number {
  return Number((Date.now() - capturedAt).toFixed(3));
}

function details(action: Action): Record<string, unknown> {
  switch (action.kind) {
    case 'cooldown':
      return { retryInS: action.retryInS };
    case 'rearm':
    case 'armed':
      return { pid: action.pid };
    case 'command':
    case 'start':
      return { argv: action.argv };
  }
}

function describe(action: Action): string {
  switch (action.kind) {
    case 'cooldown':
      return `cooling down, next action possible in ${action.retryInS} s`;
    case 'command':
      return 'running the command';
    case 'rearm':
      return `re-arming reconfig-wg (pid ${action.pid})`;
    case 'armed':
      return `the reconfig-wg started for an earlier knock (pid ${action.pid}) is still starting, and armed`;
    case 'start':
      return 'starting reconfig-wg --once';
  }
}
