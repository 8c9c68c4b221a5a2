/**
 * The listener's first look at a captured frame, in node_pcap's reused buffer: find the UDP
 * payload, check the port, size, type and mac1 in place. Allocates nothing, so a flood of junk
 * costs no garbage; what passes is copied and decoded in full (decodeFrame) and goes on to
 * admission and the Noise steps. A frame it cannot place (an unusual header) is left to the
 * full decoder, which says why it is not an initiation.
 */
import type { LinkType } from '../net/link.js';
import { locateUdpPayload, udpDestinationPort, udpPayloadLength } from '../net/locate.js';
import { screenInitiationAt, type ScreenReason } from '../wireguard/initiation.js';
import type { Responder } from '../wireguard/responder.js';

export type FrameScreenReason = ScreenReason | 'wrong-port';

/** Undefined: worth decoding; otherwise why not. */
export function screenFrame(link: LinkType, frame: Buffer, length: number, listenPort: number, responder: Responder): FrameScreenReason | undefined {
  const payload = locateUdpPayload(link, frame, length);
  if (payload < 0) return undefined;
  if (udpDestinationPort(frame, payload) !== listenPort) return 'wrong-port';
  const size = udpPayloadLength(frame, payload);
  if (payload + size > length) return 'bad-size';
  return screenInitiationAt(responder, frame, payload, size);
}
