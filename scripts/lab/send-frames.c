/*
 * Sends whole link-layer frames out of one interface through an AF_PACKET socket: how the lab
 * puts 802.1Q-tagged frames on a wire whose kernel has no VLAN devices. Built from source at
 * test time with the machine's cc (scripts/lab/flood.ts) and run inside a lab namespace only.
 *
 *   send-frames IFACE HEX [HEX ...]      (at most 4096 frames of at most 1514 bytes)
 *
 * Prints "sent N" at the end.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FRAME 1514
#define MAX_FRAMES 4096

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc - 2 > MAX_FRAMES) {
        fprintf(stderr, "usage: send-frames IFACE HEX [HEX ...]\n");
        return 2;
    }
    unsigned int ifindex = if_nametoindex(argv[1]);
    if (ifindex == 0) {
        fprintf(stderr, "send-frames: no interface %s\n", argv[1]);
        return 2;
    }
    int s = socket(AF_PACKET, SOCK_RAW, 0);
    if (s < 0) {
        fprintf(stderr, "send-frames: cannot open a packet socket: %s\n", strerror(errno));
        return 1;
    }
    struct sockaddr_ll to;
    memset(&to, 0, sizeof(to));
    to.sll_family = AF_PACKET;
    to.sll_ifindex = (int)ifindex;
    to.sll_halen = ETH_ALEN;
    unsigned long sent = 0;
    static unsigned char frame[MAX_FRAME];
    for (int i = 2; i < argc; i++) {
        size_t len = strlen(argv[i]);
        if (len % 2 != 0 || len / 2 > MAX_FRAME || len / 2 < ETH_HLEN) {
            fprintf(stderr, "send-frames: frame %d is not %d-%d bytes of hex\n", i - 1, ETH_HLEN, MAX_FRAME);
            return 2;
        }
        for (size_t j = 0; j < len / 2; j++) {
            int hi = hex_value(argv[i][2 * j]), lo = hex_value(argv[i][2 * j + 1]);
            if (hi < 0 || lo < 0) {
                fprintf(stderr, "send-frames: frame %d is not hex\n", i - 1);
                return 2;
            }
            frame[j] = (unsigned char)(hi * 16 + lo);
        }
        memcpy(to.sll_addr, frame, ETH_ALEN);
        if (sendto(s, frame, len / 2, 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)(len / 2)) sent++;
    }
    printf("sent %lu\n", sent);
    close(s);
    return 0;
}
