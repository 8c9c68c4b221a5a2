/*
 * The lab's flooder: sends UDP datagrams at a bounded rate for a bounded time, round-robin over
 * many bound source addresses and a file of payloads. Built from source at test time with the
 * machine's cc (scripts/lab/flood.ts) and run inside the lab's attacker namespace only.
 *
 *   flood -d DST -p PORT -r PER_SECOND -t SECONDS -f PAYLOADS -l PAYLOAD_SIZE [-T TTL] SRC [SRC ...]
 *   flood -d DST6 -p PORT -r PER_SECOND -t SECONDS -f PAYLOADS -l PAYLOAD_SIZE [-T TTL] -S PREFIX6 -n NETWORKS
 *
 * The second form spoofs IPv6 sources: each datagram from a random address in one of NETWORKS
 * /64s under PREFIX6 (its first 48 bits; the 16 bits after them pick the /64, the last 64 are
 * random), or in PREFIX6's own /64 alone with -n 1. It sends through a raw IPv6 socket with the
 * header included (IPV6_HDRINCL), so the lab's attacker needs no address of each.
 *
 * -T sets the IPv4 TTL or IPv6 hop limit of every datagram (1: the last hop of a traceroute,
 * a knock probe, when the attacker and R2 share a link).
 * PAYLOADS holds payloads of PAYLOAD_SIZE bytes back to back. Prints one line of figures at the
 * end: "sent N failed M seconds S".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <netinet/ip6.h>

#ifndef IPV6_HDRINCL
#define IPV6_HDRINCL 36
#endif

#define MAX_RATE 200000
#define MAX_SECONDS 120
#define MAX_SOURCES 1024
#define MAX_PAYLOAD 1500
#define MAX_PAYLOADS 4096

static volatile sig_atomic_t stopping = 0;

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(const char *why) {
    fprintf(stderr, "flood: %s\nusage: flood -d DST -p PORT -r PER_SECOND -t SECONDS -f PAYLOADS -l SIZE [-T TTL] SRC [SRC ...]\n", why);
    return 2;
}

/* Fills `addr` for `host` (IPv4 or IPv6 literal) and `port`; returns its length, 0 if not a literal. */
static socklen_t parse_address(const char *host, int port, struct sockaddr_storage *addr) {
    memset(addr, 0, sizeof(*addr));
    struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((unsigned short)port);
        return sizeof(*v4);
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((unsigned short)port);
        return sizeof(*v6);
    }
    return 0;
}

/* xorshift64: fast, seeded from the clock; the sources need only look random to R2. */
static unsigned long long rng_state = 88172645463325252ULL;
static unsigned long long next_random(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* The ones' complement sum of `len` bytes, folded later. */
static unsigned long sum16(const unsigned char *p, size_t len, unsigned long sum) {
    for (size_t i = 0; i + 1 < len; i += 2) sum += (unsigned long)((p[i] << 8) | p[i + 1]);
    if (len & 1) sum += (unsigned long)(p[len - 1] << 8);
    return sum;
}

/* Builds IPv6 + UDP + payload into `out` from `src`; returns its length. */
static size_t build_ipv6(unsigned char *out, const struct in6_addr *src, const struct in6_addr *dst, int port,
                         const unsigned char *payload, size_t size, unsigned short sport, int hop_limit) {
    size_t udp_len = 8 + size;
    memset(out, 0, 48);
    out[0] = 0x60;
    out[4] = (unsigned char)(udp_len >> 8);
    out[5] = (unsigned char)(udp_len & 0xff);
    out[6] = 17;  /* UDP */
    out[7] = (unsigned char)hop_limit;
    memcpy(out + 8, src, 16);
    memcpy(out + 24, dst, 16);
    unsigned char *udp = out + 40;
    udp[0] = (unsigned char)(sport >> 8);
    udp[1] = (unsigned char)(sport & 0xff);
    udp[2] = (unsigned char)(port >> 8);
    udp[3] = (unsigned char)(port & 0xff);
    udp[4] = (unsigned char)(udp_len >> 8);
    udp[5] = (unsigned char)(udp_len & 0xff);
    memcpy(udp + 8, payload, size);
    /* pseudo-header: addresses, upper-layer length, next header */
    unsigned long sum = sum16(out + 8, 32, 0);
    sum += (unsigned long)udp_len + 17;
    sum = sum16(udp, udp_len, sum);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    unsigned short check = (unsigned short)~sum;
    if (check == 0) check = 0xffff;
    udp[6] = (unsigned char)(check >> 8);
    udp[7] = (unsigned char)(check & 0xff);
    return 40 + udp_len;
}

int main(int argc, char **argv) {
    const char *dst = NULL, *file = NULL, *spoof = NULL;
    long port = 0, rate = 0, seconds = 0, size = 0, networks = 0, ttl = 0;
    int opt;
    while ((opt = getopt(argc, argv, "d:p:r:t:f:l:S:n:T:")) != -1) {
        switch (opt) {
        case 'd': dst = optarg; break;
        case 'p': port = strtol(optarg, NULL, 10); break;
        case 'r': rate = strtol(optarg, NULL, 10); break;
        case 't': seconds = strtol(optarg, NULL, 10); break;
        case 'f': file = optarg; break;
        case 'l': size = strtol(optarg, NULL, 10); break;
        case 'S': spoof = optarg; break;
        case 'n': networks = strtol(optarg, NULL, 10); break;
        case 'T': ttl = strtol(optarg, NULL, 10); break;
        default: return usage("unknown option");
        }
    }
    int nsources = argc - optind;
    if (dst == NULL || file == NULL) return usage("-d and -f are required");
    if (port < 1 || port > 65535) return usage("-p must be 1-65535");
    if (rate < 1 || rate > MAX_RATE) return usage("-r must be 1-200000");
    if (seconds < 1 || seconds > MAX_SECONDS) return usage("-t must be 1-120");
    if (size < 1 || size > MAX_PAYLOAD) return usage("-l must be 1-1500");
    if (spoof == NULL && (nsources < 1 || nsources > MAX_SOURCES)) return usage("give 1-1024 source addresses");
    if (spoof != NULL && (networks < 1 || networks > 65536)) return usage("-n must be 1-65536");
    if (ttl < 0 || ttl > 255) return usage("-T must be 1-255");

    static unsigned char payloads[MAX_PAYLOADS * MAX_PAYLOAD];
    FILE *f = fopen(file, "rb");
    if (f == NULL) return usage("cannot open the payload file");
    size_t got = fread(payloads, 1, sizeof(payloads), f);
    fclose(f);
    size_t npayloads = got / (size_t)size;
    if (npayloads == 0) return usage("the payload file holds no whole payload");

    struct sockaddr_storage to;
    socklen_t tolen = parse_address(dst, (int)port, &to);
    if (tolen == 0) return usage("-d must be an IPv4 or IPv6 literal");

    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    if (spoof != NULL) {
        struct in6_addr prefix;
        if (to.ss_family != AF_INET6 || inet_pton(AF_INET6, spoof, &prefix) != 1) return usage("-S and -d must be IPv6 literals");
        int s = socket(AF_INET6, SOCK_RAW, IPPROTO_RAW);
        int on = 1;
        if (s < 0 || setsockopt(s, IPPROTO_IPV6, IPV6_HDRINCL, &on, sizeof(on)) != 0) {
            fprintf(stderr, "flood: cannot open a raw IPv6 socket with the header included: %s\n", strerror(errno));
            return 1;
        }
        rng_state ^= (unsigned long long)(now_seconds() * 1e9);
        struct in6_addr dst6 = ((struct sockaddr_in6 *)&to)->sin6_addr;
        /* a raw IPv6 socket reads sin6_port as the protocol: 0 or the socket's own */
        ((struct sockaddr_in6 *)&to)->sin6_port = 0;
        static unsigned char packet[48 + MAX_PAYLOAD];
        const double start = now_seconds();
        const double end = start + (double)seconds;
        unsigned long sent = 0, failed = 0, next = 0;
        const struct timespec tick = {0, 500000};
        for (double t = start; t < end && !stopping; t = now_seconds()) {
            unsigned long due = (unsigned long)((t - start) * (double)rate);
            while (next < due && !stopping) {
                struct in6_addr src = prefix;
                unsigned long long r = next_random();
                if (networks > 1) {
                    unsigned int net = (unsigned int)(r % (unsigned long long)networks);
                    src.s6_addr[6] = (unsigned char)(net >> 8);
                    src.s6_addr[7] = (unsigned char)(net & 0xff);
                }
                unsigned long long host = next_random();
                for (int b = 0; b < 8; b++) src.s6_addr[8 + b] = (unsigned char)(host >> (8 * b));
                const unsigned char *p = payloads + (next % npayloads) * (size_t)size;
                size_t len = build_ipv6(packet, &src, &dst6, (int)port, p, (size_t)size, (unsigned short)(1024 + (r >> 32) % 60000), ttl > 0 ? (int)ttl : 64);
                if (sendto(s, packet, len, 0, (struct sockaddr *)&to, tolen) == (ssize_t)len) sent++;
                else if (failed++ == 0) fprintf(stderr, "flood: first send failed: %s\n", strerror(errno));
                next++;
            }
            nanosleep(&tick, NULL);
        }
        printf("sent %lu failed %lu seconds %.3f\n", sent, failed, now_seconds() - start);
        close(s);
        return 0;
    }

    static int sockets[MAX_SOURCES];
    for (int i = 0; i < nsources; i++) {
        struct sockaddr_storage from;
        socklen_t fromlen = parse_address(argv[optind + i], 0, &from);
        if (fromlen == 0 || from.ss_family != to.ss_family) return usage("each SRC must be a literal of the destination's family");
        sockets[i] = socket(to.ss_family, SOCK_DGRAM, 0);
        if (sockets[i] < 0 || bind(sockets[i], (struct sockaddr *)&from, fromlen) != 0) {
            fprintf(stderr, "flood: cannot bind %s: %s\n", argv[optind + i], strerror(errno));
            return 1;
        }
        int hops = (int)ttl;
        if (ttl > 0 && (to.ss_family == AF_INET ? setsockopt(sockets[i], IPPROTO_IP, IP_TTL, &hops, sizeof(hops))
                                                : setsockopt(sockets[i], IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof(hops))) != 0) {
            fprintf(stderr, "flood: cannot set the TTL: %s\n", strerror(errno));
            return 1;
        }
    }

    const double start = now_seconds();
    const double end = start + (double)seconds;
    unsigned long sent = 0, failed = 0, next = 0;
    const struct timespec tick = {0, 500000}; /* 0.5 ms */
    for (double t = start; t < end && !stopping; t = now_seconds()) {
        /* Send what the rate allows up to now, then sleep a tick: the rate holds on average. */
        unsigned long due = (unsigned long)((t - start) * (double)rate);
        while (next < due && !stopping) {
            int s = sockets[next % (unsigned long)nsources];
            const unsigned char *p = payloads + (next % npayloads) * (size_t)size;
            if (sendto(s, p, (size_t)size, 0, (struct sockaddr *)&to, tolen) == size) sent++;
            else failed++;
            next++;
        }
        nanosleep(&tick, NULL);
    }
    printf("sent %lu failed %lu seconds %.3f\n", sent, failed, now_seconds() - start);
    for (int i = 0; i < nsources; i++) close(sockets[i]);
    return 0;
}
