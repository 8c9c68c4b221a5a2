/**
 * Points one peer at its new endpoint and makes WireGuard send to it at once.
 *
 * Sending at once matters: R2's stateful firewall only lets R1's packets in once R2 has sent
 * to R1's new address, and R1's NAT only forwards R2's packets on the mapping R1 just used.
 * WireGuard sends a keepalive immediately when persistent keepalive goes from off to on
 * (wireguard-go device/uapi.go; the kernel's wg_set_device does the same); with no session
 * for the new address, that keepalive becomes a handshake initiation. So: set the endpoint with
 * keepalive off-to-on, then restore the peer's own setting. The interface is never restarted
 * and no other peer is touched.
 */
import type { PeerConfig, WgRunner } from '../wireguard/wg.js';
import { setPeer } from '../wireguard/wg.js';

export interface ApplyPlan {
  readonly steps: readonly (readonly string[])[];
}

/** The `wg set … peer KEY` settings, in order, that move the endpoint and trigger a send. */
export function planEndpointChange(peer: PeerConfig, endpoint: string): ApplyPlan {
  if (peer.keepalive === 0) {
    // off → 1 sends now; then back to off, the peer's own setting.
    return { steps: [['endpoint', endpoint, 'persistent-keepalive', '1'], ['persistent-keepalive', 'off']] };
  }
  // on → off → on again: the second step is the off-to-on edge, and it restores the setting.
  return { steps: [['endpoint', endpoint, 'persistent-keepalive', 'off'], ['persistent-keepalive', String(peer.keepalive)]] };
}

/**
 * Runs the plan; resolves with the wall-clock time (ms) at which the first step was done: the
 * endpoint was set and the send triggered, which is when the tunnel can come up.
 */
export async function applyEndpointChange(iface: string, peer: PeerConfig, endpoint: string, run?: WgRunner): Promise<number> {
  const [first, ...rest] = planEndpointChange(peer, endpoint).steps;
  if (first !== undefined) await setPeer(iface, peer.publicKey, first, run);
  const setAt = Date.now();
  for (const step of rest) await setPeer(iface, peer.publicKey, step, run);
  return setAt;
}
