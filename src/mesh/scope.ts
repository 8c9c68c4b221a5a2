/**
 * Which of a peer's prefixes (as the registry lists them) the mesh client may route to it
 * directly. Pure. A prefix given to a direct peer takes traffic from whoever had it, so only
 * what is certainly the peer's own and certainly harmless is taken:
 *
 * - it lies within the scope (--scope; by default the interface's own networks): never a
 *   default route, never anything outside;
 * - it is not a prefix another peer of the interface has, nor wider than one: WireGuard moves an
 *   allowed IP that two peers claim to the last one set, so an equal prefix would be taken from
 *   the hub (or a peer someone else configured), and a wider one would shadow it;
 * - it does not hold the registry's own address (the hub's tunnel address): the registry and
 *   the hub must stay reachable through the hub whatever a listing says;
 * - it does not overlap a prefix already given to another direct peer (two peers claiming one
 *   prefix: the first keeps it).
 *
 * A specific prefix within the hub's aggregate is exactly what is wanted: longest prefix wins,
 * so the peer's traffic goes direct while the aggregate stays on the hub, and taking the
 * specific away again hands the traffic back to the hub.
 */
import { contains, containsAddress, overlaps, samePrefix, type Prefix } from './prefix.js';

export type RefusedReason = 'outside-scope' | 'default-route' | 'claimed-by-other-peer' | 'covers-the-registry' | 'given-to-another-direct-peer';

export interface ScopeContext {
  readonly scope: readonly Prefix[];
  /** allowed IPs of every peer the mesh client did not add (the hub among them) */
  readonly foreign: readonly Prefix[];
  readonly registry: { family: 4 | 6; value: bigint };
  /** prefixes the client routes to other direct peers */
  readonly takenByOthers: readonly Prefix[];
}

export interface ScopeResult {
  readonly accepted: readonly Prefix[];
  readonly refused: readonly { readonly prefix: string; readonly reason: RefusedReason }[];
}

function refusal(prefix: Prefix, context: ScopeContext): RefusedReason | undefined {
  if (prefix.length === 0) return 'default-route';
  if (!context.scope.some((scope) => contains(scope, prefix))) return 'outside-scope';
  if (context.foreign.some((other) => contains(prefix, other))) return 'claimed-by-other-peer';
  if (containsAddress(prefix, context.registry)) return 'covers-the-registry';
  if (context.takenByOthers.some((other) => overlaps(other, prefix))) return 'given-to-another-direct-peer';
  return undefined;
}

export function selectPrefixes(allowed: readonly Prefix[], context: ScopeContext): ScopeResult {
  const accepted: Prefix[] = [];
  const refused: { prefix: string; reason: RefusedReason }[] = [];
  for (const prefix of allowed) {
    const reason = refusal(prefix, context);
    if (reason !== undefined) refused.push({ prefix: prefix.text, reason });
    else if (!accepted.some((other) => samePrefix(other, prefix))) accepted.push(prefix);
  }
  return { accepted, refused };
}
