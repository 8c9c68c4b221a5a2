/**
 * Where kernel WireGuard can be had for the lab: here, when this machine's kernel has it, or
 * else in the VM of run-in-vm.sh (Debian's kernel under QEMU, the host's root over 9p).
 */
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { host, labId, nsRun } from '../lab/netns.js';

/** scripts/vm/run-in-vm.sh, from dist/scripts/vm or scripts/vm alike */
export const RUN_IN_VM = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../../scripts/vm/run-in-vm.sh' : './run-in-vm.sh', import.meta.url));

/** Can a kernel WireGuard interface be made here? Tried in a namespace of its own, removed again. */
export async function kernelWireGuardHere(): Promise<boolean> {
  const ns = `rwg-${labId()}-probe`;
  await host('ip', ['netns', 'add', ns]);
  try {
    await nsRun(ns, 'ip', ['link', 'add', 'wgprobe', 'type', 'wireguard']);
    return true;
  } catch {
    return false;
  } finally {
    await host('ip', ['netns', 'del', ns]).catch(() => undefined);
  }
}

/**
 * Runs node with `args` in the VM, in this directory, output passed through; resolves with its
 * exit status (124: the timeout ended the VM; 125: the VM failed before the command ran).
 */
export async function runNodeInVm(args: readonly string[], options: { timeoutSeconds: number; smp?: number }): Promise<number> {
  const result = await execa('bash', [RUN_IN_VM, '--timeout', String(options.timeoutSeconds), '--smp', String(options.smp ?? 1), '--', process.execPath, ...args], {
    stdio: 'inherit',
    reject: false,
  });
  return result.exitCode ?? 1;
}
