/**
 * One process for both jobs (`reconfig-wg --knock-port BASE`): the reconfig-wg daemon and a
 * port-knock listener that re-arms it, sharing one node. Two node processes each carry
 * node's own ~35 MB; on a router with 128 MB that is worth saving (README, footprint).
 *
 * The knock re-arms this very process the way a separate port-knock would: through the pid
 * file (it names us) and SIGUSR1. The knock listener installs no signal handlers of its own,
 * so SIGUSR1 never ends its cooldown here; it stops when the daemon stops.
 */
import type { Logger } from '../common/log.js';
import type { KnockOptions } from '../knock/options.js';
import { startReconfig } from './daemon.js';
import { defaultPidFile, type ReconfigOptions } from './options.js';
import { PROGRAM } from './identity.js';

export async function startWithKnock(options: ReconfigOptions, knock: KnockOptions, logger: Logger): Promise<{ readonly done: Promise<number> }> {
  const daemon = await startReconfig(options, { logger });
  const { startKnock } = await import('../knock/daemon.js');
  let knocks: Awaited<ReturnType<typeof startKnock>>;
  try {
    knocks = await startKnock(
      { ...knock, interface: daemon.interface, reconfigPidFile: options.pidFile ?? defaultPidFile(PROGRAM, daemon.interface) },
      { logger: logger.child({ job: 'port-knock' }), signals: false },
    );
  } catch (error) {
    await daemon.stop();
    throw error;
  }
  return {
    done: daemon.done.then(async (code) => {
      await knocks.stop();
      return code;
    }),
  };
}
