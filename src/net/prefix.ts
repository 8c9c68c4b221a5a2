/**
 * The network an address belongs to, for sharing a budget fairly: an IPv4 /24 or an IPv6 /64.
 * One subscriber, one data centre rack or one attacker usually holds a whole /24 or /64, so
 * counting prefixes rather than addresses keeps many addresses in one network from counting
 * as many sources. Input is an address as the decoders format it (dotted quad, RFC 5952).
 */

/** `a.b.c` for IPv4, the first four groups for IPv6; the text itself if it is neither. */
export function networkOf(address: string): string {
  if (!address.includes(':')) {
    const last = address.lastIndexOf('.');
    return last < 0 ? address : address.slice(0, last);
  }
  // An IPv4-mapped address (::ffff:a.b.c.d) is an IPv4 sender.
  if (address.includes('.')) return networkOf(address.slice(address.lastIndexOf(':') + 1));
  return ipv6Groups(address).slice(0, 4).join(':');
}

/** The eight groups of an RFC 5952 address, `::` expanded; no validation (decoders made it). */
function ipv6Groups(address: string): string[] {
  const gap = address.indexOf('::');
  if (gap < 0) return address.split(':');
  const head = gap === 0 ? [] : address.slice(0, gap).split(':');
  const tail = gap + 2 >= address.length ? [] : address.slice(gap + 2).split(':');
  return [...head, ...Array<string>(Math.max(0, 8 - head.length - tail.length)).fill('0'), ...tail];
}

/**
 * The key under which an address counts as a peer's endpoint: the address itself for IPv4
 * (a NAT keeps its public address and changes the port), the /64 for IPv6 (privacy addresses
 * and prefix-delegated routers change the interface identifier, not the network).
 */
export function endpointKeyOf(address: string): string {
  return address.includes(':') && !address.includes('.') ? `${networkOf(address)}::/64` : address;
}
