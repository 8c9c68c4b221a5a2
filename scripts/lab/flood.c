/*
 * The lab's flooder: sends UDP datagrams at a bounded rate for a bounded time, round-robin over
 * many bound source addresses and a file of payloads. Built from source at test time with the
 * machine's cc (scripts/lab/flood.ts) and run inside the lab's attacker namespace only.
 *
 *   flood -d DST -p PORT -r PER_SECOND -t SECONDS -f PAYLOADS -l PAYLOAD_SIZE [-T TTL] SRC [SRC ...]
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

int main(int argc, char **argv) {
    const char *dst = NULL, *file = NULL;
    long port = 0, rate = 0, seconds = 0, size = 0, ttl = 0;
    int opt;
    while ((opt = getopt(argc, argv, "d:p:r:t:f:l:T:")) != -1) {
        switch (opt) {
        case 'd': dst = optarg; break;
        case 'p': port = strtol(optarg, NULL, 10); break;
        case 'r': rate = strtol(optarg, NULL, 10); break;
        case 't': seconds = strtol(optarg, NULL, 10); break;
        case 'f': file = optarg; break;
        case 'l': size = strtol(optarg, NULL, 10); break;
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
    if (nsources < 1 || nsources > MAX_SOURCES) return usage("give 1-1024 source addresses");
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

    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
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
