/**
 * The listener's first look at a captured frame, in node_pcap's reused buffer: find the UDP
 * payload and, for an initiation to the listen port, check its size, type and mac1 in place.
 * Allocates nothing, so a flood of junk initiations costs no garbage; what passes is copied
 * and decoded in full (decodeFrame) and goes on to admission and the Noise steps. Every other
 * kind the filter lets through (R2's own handshake messages, data from new sources) and any
 * frame it cannot place (an unusual header) is left to the full path, which says why.
 */
import type { LinkType } from '../net/link.js';
import { locateUdpPayload, udpDestinationPort, udpPayloadLength, udpSourcePort } from '../net/locate.js';
import { MESSAGE_INITIATION, MESSAGE_TRANSPORT, TRANSPORT_MIN_SIZE, TRANSPORT_RECEIVER_OFFSET } from '../wireguard/constants.js';
import { screenInitiationAt, type ScreenReason } from '../wireguard/initiation.js';
import type { Responder } from '../wireguard/responder.js';

export type FrameScreenReason = ScreenReason | 'wrong-port';
/**
 * `mac1-ok`: an initiation to the listen port whose size, type and mac1 were checked here;
 * `unchecked`: worth decoding, nothing vouched for (the full path checks everything itself);
 * otherwise why the frame is dropped.
 */
export type FrameScreen = 'mac1-ok' | 'unchecked' | FrameScreenReason;

export function screenFrame(link: LinkType, frame: Buffer, length: number, listenPort: number, responder: Responder): FrameScreen {
  const payload = locateUdpPayload(link, frame, length);
  if (payload < 0) return 'unchecked';
  const fromListenPort = udpSourcePort(frame, payload) === listenPort;
  if (udpDestinationPort(frame, payload) !== listenPort) return fromListenPort ? 'unchecked' : 'wrong-port';
  // R2's own message to a peer whose port is the listen port too: keyed for that peer, not us.
  if (fromListenPort || frame[payload] !== MESSAGE_INITIATION) return 'unchecked';
  const size = udpPayloadLength(frame, payload);
  if (payload + size > length) return 'bad-size';
  return screenInitiationAt(responder, frame, payload, size) ?? 'mac1-ok';
}

/**
 * For a transport data packet to the listen port, the receiver index it names, read in place;
 * -1 for anything else (or too short to be one: the full path says why). Lets the screen drop
 * data for a session that is not live, or whose peer is resting, without a copy.
 */
export function dataReceiverAt(link: LinkType, frame: Buffer, length: number, listenPort: number): number {
  const payload = locateUdpPayload(link, frame, length);
  if (payload < 0 || udpDestinationPort(frame, payload) !== listenPort || udpSourcePort(frame, payload) === listenPort) return -1;
  if (frame[payload] !== MESSAGE_TRANSPORT || payload + TRANSPORT_MIN_SIZE > length || udpPayloadLength(frame, payload) < TRANSPORT_MIN_SIZE) return -1;
  return frame.readUInt32LE(payload + TRANSPORT_RECEIVER_OFFSET);
}
