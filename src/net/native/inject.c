/*
 * The few socket calls Node cannot make: raw IP sockets with the header included (to re-send a
 * vouched-for packet to R2's own address with its original source kept), NETLINK_NETFILTER
 * sockets (to insert a conntrack entry before that, and to follow conntrack's events),
 * NETLINK_GENERIC sockets (to read the kernel WireGuard's endpoints without a `wg` process), UDP
 * sockets bound to one device (SO_BINDTODEVICE: only what arrived through that interface), and
 * a readiness watch on such a descriptor in Node's own event loop (uv_poll), and a capture
 * socket's last close in libuv's thread pool and a new filter on it in place (packetSockets,
 * duplicate, closeInBackground, attachFilter: see src/net/capture.ts). Everything else,
 * packets and netlink messages alike, is built and parsed in TypeScript (src/net/inject.ts,
 * src/net/conntrack.ts, src/net/bound-udp.ts).
 *
 * Every function checks its arguments and reports failure as a negative errno number (or throws
 * a TypeError for a wrong argument type), so a bad call never takes the process down. Nothing
 * blocks for long: sends use MSG_DONTWAIT and the netlink read waits at most the given timeout.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <pcap/pcap.h>
#include <node_api.h>
#include <uv.h>

/* An IP packet is at most 64 KiB; a netlink answer to one request is far smaller than this. */
#define MAX_PACKET 65535
#define NETLINK_BUFFER 8192
#define MAX_TIMEOUT_MS 5000

static napi_value make_int(napi_env env, int value) {
  napi_value result;
  napi_create_int32(env, value, &result);
  return result;
}

/* Reads argument `index` as an int32; throws a TypeError (returns 0) when it is not a number. */
static int get_int(napi_env env, napi_value *argv, size_t argc, size_t index, int32_t *out) {
  napi_valuetype type;
  if (index >= argc || napi_typeof(env, argv[index], &type) != napi_ok || type != napi_number ||
      napi_get_value_int32(env, argv[index], out) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a number argument");
    return 0;
  }
  return 1;
}

/* Reads argument `index` as a Buffer; throws a TypeError (returns 0) when it is not one. */
static int get_buffer(napi_env env, napi_value *argv, size_t argc, size_t index, void **data, size_t *length) {
  bool is_buffer = false;
  if (index >= argc || napi_is_buffer(env, argv[index], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, argv[index], data, length) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a Buffer argument");
    return 0;
  }
  return 1;
}

/* openRaw(family: 4 | 6) -> fd, or -errno (EPERM/EACCES without CAP_NET_RAW). */
static napi_value open_raw(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t family;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!get_int(env, argv, argc, 0, &family)) return NULL;
  if (family != 4 && family != 6) return make_int(env, -EAFNOSUPPORT);
  /* IPPROTO_RAW means "the header is ours" for both families on Linux; IPv4 also takes the
   * explicit IP_HDRINCL, which older kernels want to see. */
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd < 0) return make_int(env, -errno);
  if (family == 4) {
    int on = 1;
    if (setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &on, sizeof on) < 0) {
      int error = errno;
      close(fd);
      return make_int(env, -error);
    }
  }
  return make_int(env, fd);
}

/* sendTo(fd, family, destination: Buffer(4|16), packet: Buffer) -> bytes sent, or -errno. */
static napi_value send_to(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t fd, family;
  void *address, *packet;
  size_t address_length, packet_length;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!get_int(env, argv, argc, 0, &fd) || !get_int(env, argv, argc, 1, &family) ||
      !get_buffer(env, argv, argc, 2, &address, &address_length) ||
      !get_buffer(env, argv, argc, 3, &packet, &packet_length)) return NULL;
  if (fd < 0 || packet_length == 0 || packet_length > MAX_PACKET) return make_int(env, -EINVAL);
  ssize_t sent;
  if (family == 4 && address_length == 4) {
    struct sockaddr_in to = { .sin_family = AF_INET };
    memcpy(&to.sin_addr, address, 4);
    sent = sendto(fd, packet, packet_length, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to);
  } else if (family == 6 && address_length == 16) {
    /* sin6_port must stay 0: on a raw IPv6 socket it would name the protocol. */
    struct sockaddr_in6 to = { .sin6_family = AF_INET6 };
    memcpy(&to.sin6_addr, address, 16);
    sent = sendto(fd, packet, packet_length, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to);
  } else {
    return make_int(env, -EINVAL);
  }
  return make_int(env, sent < 0 ? -errno : (int)sent);
}

/* Binds netlink socket fd with nl_pid 0 (the kernel picks a unique port id) to `groups`
 * (without groups only answers arrive): fd, or -errno with fd closed. */
static int bind_netlink(int fd, uint32_t groups) {
  struct sockaddr_nl local = { .nl_family = AF_NETLINK, .nl_groups = groups };
  if (bind(fd, (struct sockaddr *)&local, sizeof local) == 0) return fd;
  int error = errno;
  close(fd);
  return -error;
}

/* openNetlinkNetfilter(groups = 0) -> fd, or -errno. The kernel checks CAP_NET_ADMIN per request,
 * not here; joining a multicast group (a bit mask: bit N-1 for group N, e.g. 1 << 2 for
 * NFNLGRP_CONNTRACK_DESTROY) needs CAP_NET_ADMIN at bind. A socket with groups is non-blocking,
 * with a larger receive buffer: events come in bursts (a flush destroys every entry at once). */
static napi_value open_netlink_netfilter(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t groups = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= 1) {
    napi_valuetype type;
    napi_typeof(env, argv[0], &type);
    if (type != napi_undefined && !get_int(env, argv, argc, 0, &groups)) return NULL;
  }
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | (groups != 0 ? SOCK_NONBLOCK : 0), NETLINK_NETFILTER);
  if (fd < 0) return make_int(env, -errno);
  if (groups != 0) {
    int size = 1 << 20;
    /* Best effort: the kernel caps it at net.core.rmem_max; SO_RCVBUFFORCE lifts the cap with
     * CAP_NET_ADMIN. A full buffer still shows as ENOBUFS on the next read, never silently. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
      (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  return make_int(env, bind_netlink(fd, (uint32_t)groups));
}

/* openNetlinkGeneric() -> fd, or -errno: a blocking NETLINK_GENERIC socket bound to a
 * kernel-chosen port id, for asking the kernel's WireGuard for its peers' endpoints (what `wg show`
 * does, without starting a process). Reads go through netlinkReceive, bounded by its timeout. */
static napi_value open_netlink_generic(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
  if (fd < 0) return make_int(env, -errno);
  return make_int(env, bind_netlink(fd, 0));
}

/* netlinkSend(fd, message: Buffer) -> 0, or -errno. */
static napi_value netlink_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  void *message;
  size_t length;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!get_int(env, argv, argc, 0, &fd) || !get_buffer(env, argv, argc, 1, &message, &length)) return NULL;
  if (fd < 0 || length < sizeof(struct nlmsghdr) || length > NETLINK_BUFFER) return make_int(env, -EINVAL);
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  ssize_t sent = sendto(fd, message, length, MSG_DONTWAIT, (struct sockaddr *)&kernel, sizeof kernel);
  if (sent < 0) return make_int(env, -errno);
  return make_int(env, sent == (ssize_t)length ? 0 : -EMSGSIZE);
}

/* netlinkReceive(fd, timeoutMs) -> Buffer with one datagram, or -errno (-ETIMEDOUT when none came).
 * The kernel answers ctnetlink requests while handling the send, so the wait is normally zero;
 * the bound keeps a daemon's event loop from ever hanging on it. */
static napi_value netlink_receive(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd, timeout;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!get_int(env, argv, argc, 0, &fd) || !get_int(env, argv, argc, 1, &timeout)) return NULL;
  if (fd < 0) return make_int(env, -EINVAL);
  if (timeout < 0) timeout = 0;
  if (timeout > MAX_TIMEOUT_MS) timeout = MAX_TIMEOUT_MS;
  struct pollfd waiting = { .fd = fd, .events = POLLIN };
  int ready;
  do ready = poll(&waiting, 1, timeout); while (ready < 0 && errno == EINTR);
  if (ready < 0) return make_int(env, -errno);
  if (ready == 0) return make_int(env, -ETIMEDOUT);
  char buffer[NETLINK_BUFFER];
  ssize_t got = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
  if (got < 0) return make_int(env, -errno);
  napi_value result;
  if (napi_create_buffer_copy(env, (size_t)got, buffer, NULL, &result) != napi_ok) return make_int(env, -ENOMEM);
  return result;
}


/* openUdpOnDevice(family, device, address: Buffer(4|16), port) -> fd, or -errno. A non-blocking
 * UDP socket bound to the address and port and to the device (SO_BINDTODEVICE, CAP_NET_RAW
 * before Linux 5.7): the kernel hands it only datagrams that arrived through that interface,
 * whatever rp_filter says, so a datagram spoofed from another side never reaches it. */
static napi_value open_udp_on_device(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t family, port;
  void *address;
  size_t address_length;
  char device[IFNAMSIZ + 1];
  size_t device_length = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!get_int(env, argv, argc, 0, &family)) return NULL;
  if (argc < 2 || napi_get_value_string_utf8(env, argv[1], device, sizeof device, &device_length) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a string argument");
    return NULL;
  }
  if (!get_buffer(env, argv, argc, 2, &address, &address_length) || !get_int(env, argv, argc, 3, &port)) return NULL;
  if (device_length == 0 || device_length >= IFNAMSIZ || port < 0 || port > 65535) return make_int(env, -EINVAL);
  if (!((family == 4 && address_length == 4) || (family == 6 && address_length == 16))) return make_int(env, -EINVAL);
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_UDP);
  if (fd < 0) return make_int(env, -errno);
  int error = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, device, (socklen_t)device_length) < 0) error = errno;
  if (error == 0 && family == 6) {
    int on = 1;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) < 0) error = errno;
  }
  if (error == 0) {
    int r;
    if (family == 4) {
      struct sockaddr_in local = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
      memcpy(&local.sin_addr, address, 4);
      r = bind(fd, (struct sockaddr *)&local, sizeof local);
    } else {
      struct sockaddr_in6 local = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
      memcpy(&local.sin6_addr, address, 16);
      r = bind(fd, (struct sockaddr *)&local, sizeof local);
    }
    if (r < 0) error = errno;
  }
  if (error != 0) {
    close(fd);
    return make_int(env, -error);
  }
  return make_int(env, fd);
}

/* receiveFrom(fd, maxBytes) -> { data: Buffer, address: Buffer(4|16), port } for one datagram,
 * or -errno (-EAGAIN when none is waiting). A datagram longer than maxBytes (at most 64 KiB) is
 * cut and reported with truncated: true. */
static napi_value receive_from(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd, max;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!get_int(env, argv, argc, 0, &fd) || !get_int(env, argv, argc, 1, &max)) return NULL;
  if (fd < 0 || max <= 0 || max > MAX_PACKET) return make_int(env, -EINVAL);
  char buffer[MAX_PACKET];
  struct sockaddr_storage from;
  socklen_t from_length = sizeof from;
  ssize_t got;
  do got = recvfrom(fd, buffer, (size_t)max, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&from, &from_length);
  while (got < 0 && errno == EINTR);
  if (got < 0) return make_int(env, -errno);
  size_t kept = (size_t)got > (size_t)max ? (size_t)max : (size_t)got;
  napi_value result, data, address, port, truncated;
  if (napi_create_object(env, &result) != napi_ok || napi_create_buffer_copy(env, kept, buffer, NULL, &data) != napi_ok)
    return make_int(env, -ENOMEM);
  if (from.ss_family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)&from;
    napi_create_buffer_copy(env, 4, &in->sin_addr, NULL, &address);
    port = make_int(env, ntohs(in->sin_port));
  } else if (from.ss_family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&from;
    napi_create_buffer_copy(env, 16, &in6->sin6_addr, NULL, &address);
    port = make_int(env, ntohs(in6->sin6_port));
  } else {
    return make_int(env, -EAFNOSUPPORT);
  }
  napi_get_boolean(env, (size_t)got > kept, &truncated);
  napi_set_named_property(env, result, "data", data);
  napi_set_named_property(env, result, "address", address);
  napi_set_named_property(env, result, "port", port);
  napi_set_named_property(env, result, "truncated", truncated);
  return result;
}

/* sendToUdp(fd, family, address: Buffer(4|16), port, data: Buffer) -> bytes sent, or -errno. */
static napi_value send_to_udp(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  int32_t fd, family, port;
  void *address, *data;
  size_t address_length, data_length;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!get_int(env, argv, argc, 0, &fd) || !get_int(env, argv, argc, 1, &family) ||
      !get_buffer(env, argv, argc, 2, &address, &address_length) || !get_int(env, argv, argc, 3, &port) ||
      !get_buffer(env, argv, argc, 4, &data, &data_length)) return NULL;
  if (fd < 0 || port <= 0 || port > 65535 || data_length > MAX_PACKET) return make_int(env, -EINVAL);
  ssize_t sent;
  if (family == 4 && address_length == 4) {
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    memcpy(&to.sin_addr, address, 4);
    sent = sendto(fd, data, data_length, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to);
  } else if (family == 6 && address_length == 16) {
    struct sockaddr_in6 to = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
    memcpy(&to.sin6_addr, address, 16);
    sent = sendto(fd, data, data_length, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to);
  } else {
    return make_int(env, -EINVAL);
  }
  return make_int(env, sent < 0 ? -errno : (int)sent);
}

/*
 * watch(fd, onReadable) -> a handle for unwatch, or -errno. Calls onReadable() from Node's event
 * loop whenever fd is readable (level-triggered: it is called again until the caller has read
 * everything). unwatch(handle) stops it; the descriptor stays open for the caller to close.
 * The watch keeps the event loop alive, as a listening socket does, and runs until unwatch, even
 * if the handle is dropped.
 */
typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int stopped;
  /* Freed when both are true: libuv has closed the poll and JavaScript dropped the handle. */
  int closed;
  int finalized;
} watch_t;

static void watch_closed(uv_handle_t *handle) {
  watch_t *w = (watch_t *)handle->data;
  w->closed = 1;
  if (w->finalized) free(w);
}

static void watch_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  watch_t *w = (watch_t *)data;
  w->finalized = 1;
  if (w->closed) free(w);
}

static void watch_ready(uv_poll_t *poll, int status, int events) {
  (void)events;
  watch_t *w = (watch_t *)poll->data;
  if (w->stopped) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, resource, global, argv[1];
  napi_get_reference_value(env, w->callback, &callback);
  napi_get_global(env, &global);
  argv[0] = make_int(env, status < 0 ? status : 0);
  napi_callback_scope callback_scope;
  napi_create_object(env, &resource);
  if (napi_open_callback_scope(env, resource, w->context, &callback_scope) == napi_ok) {
    napi_value ignored;
    /* An exception thrown by the callback is Node's uncaught exception, as for any event. */
    napi_make_callback(env, w->context, global, callback, 1, argv, &ignored);
    napi_close_callback_scope(env, callback_scope);
  }
  napi_close_handle_scope(env, scope);
}

static void stop_watch(napi_env env, watch_t *w) {
  if (w->stopped) return;
  w->stopped = 1;
  uv_poll_stop(&w->poll);
  napi_delete_reference(env, w->callback);
  napi_async_destroy(env, w->context);
  uv_close((uv_handle_t *)&w->poll, watch_closed);
}

static napi_value watch_fd(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!get_int(env, argv, argc, 0, &fd)) return NULL;
  napi_valuetype type;
  if (argc < 2 || napi_typeof(env, argv[1], &type) != napi_ok || type != napi_function) {
    napi_throw_type_error(env, NULL, "expected a function argument");
    return NULL;
  }
  if (fd < 0) return make_int(env, -EBADF);
  struct uv_loop_s *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return make_int(env, -EINVAL);
  watch_t *w = calloc(1, sizeof *w);
  if (w == NULL) return make_int(env, -ENOMEM);
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r < 0) {
    free(w);
    return make_int(env, r);
  }
  w->poll.data = w;
  w->env = env;
  napi_value name;
  napi_create_string_utf8(env, "reconfig-wg:watch", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, argv[1], 1, &w->callback);
  napi_async_init(env, NULL, name, &w->context);
  r = uv_poll_start(&w->poll, UV_READABLE, watch_ready);
  if (r < 0) {
    w->finalized = 1;
    stop_watch(env, w);
    return make_int(env, r);
  }
  napi_value handle;
  napi_create_external(env, w, watch_finalize, NULL, &handle);
  return handle;
}

/* unwatch(handle) -> 0; a second call does nothing. */
static napi_value unwatch_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_valuetype type;
  void *data = NULL;
  if (argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_external ||
      napi_get_value_external(env, argv[0], &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, NULL, "expected a watch handle");
    return NULL;
  }
  stop_watch(env, (watch_t *)data);
  return make_int(env, 0);
}

/* The one argument of close, duplicate and closeInBackground: a descriptor. False with `*bad`
 * set to what the call returns: NULL after a TypeError, -EBADF for a negative number. */
static int get_fd(napi_env env, napi_callback_info info, int32_t *fd, napi_value *bad) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  *bad = NULL;
  if (!get_int(env, argv, argc, 0, fd)) return 0;
  if (*fd >= 0) return 1;
  *bad = make_int(env, -EBADF);
  return 0;
}

/* close(fd) -> 0, or -errno. */
static napi_value close_fd(napi_env env, napi_callback_info info) {
  int32_t fd;
  napi_value bad;
  if (!get_fd(env, info, &fd, &bad)) return bad;
  return make_int(env, close(fd) < 0 ? -errno : 0);
}

/* packetSockets() -> the descriptors of this process that are AF_PACKET sockets (an array), or
 * -errno. libpcap opens one per capture and node_pcap does not say which: the capture module
 * compares this list before and after an open. */
static napi_value packet_sockets(napi_env env, napi_callback_info info) {
  (void)info;
  DIR *dir = opendir("/proc/self/fd");
  if (dir == NULL) return make_int(env, -errno);
  napi_value list;
  napi_create_array(env, &list);
  uint32_t count = 0;
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    char *end;
    long fd = strtol(entry->d_name, &end, 10);
    if (*end != '\0' || end == entry->d_name || fd < 0 || fd > 1 << 20 || fd == dirfd(dir)) continue;
    struct stat st;
    if (fstat((int)fd, &st) < 0 || !S_ISSOCK(st.st_mode)) continue;
    int domain = 0;
    socklen_t length = sizeof domain;
    if (getsockopt((int)fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) < 0 || domain != AF_PACKET) continue;
    napi_set_element(env, list, count++, make_int(env, (int)fd));
  }
  closedir(dir);
  return list;
}

/* duplicate(fd) -> a new descriptor (close-on-exec) for the same open socket, or -errno. */
static napi_value duplicate_fd(napi_env env, napi_callback_info info) {
  int32_t fd;
  napi_value bad;
  if (!get_fd(env, info, &fd, &bad)) return bad;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  return make_int(env, copy < 0 ? -errno : copy);
}

typedef struct {
  uv_work_t work;
  int fd;
} background_close_t;

static void background_close_work(uv_work_t *work) {
  background_close_t *job = (background_close_t *)work->data;
  /* The last reference to a packet socket: the kernel tears its ring and hook down here, RCU
   * grace periods included (synchronize_net), in this thread of libuv's pool. */
  close(job->fd);
}

static void background_close_done(uv_work_t *work, int status) {
  (void)status;
  free(work->data);
}

/* closeInBackground(fd) -> 0, or -errno: closes fd in libuv's thread pool, so that whatever the
 * kernel does on the last close (for a packet socket: 10-50 ms of waiting, measured) does not
 * hold up the event loop. */
static napi_value close_in_background(napi_env env, napi_callback_info info) {
  int32_t fd;
  napi_value bad;
  if (!get_fd(env, info, &fd, &bad)) return bad;
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return make_int(env, -EINVAL);
  background_close_t *job = malloc(sizeof *job);
  if (job == NULL) return make_int(env, -ENOMEM);
  job->fd = fd;
  job->work.data = job;
  int queued = uv_queue_work(loop, &job->work, background_close_work, background_close_done);
  if (queued != 0) {
    free(job);
    return make_int(env, close(fd) < 0 ? -errno : 0);
  }
  return make_int(env, 0);
}

/* The kernel's view of a cooked (DLT_LINUX_SLL) capture: the packet starts at the network
 * header, and the pseudo-header's fields are ancillary loads. libpcap compiles for the 16-byte
 * pseudo-header and rewrites each load this way before it attaches a filter (pcap-linux.c's
 * fix_offset); a load from elsewhere in the pseudo-header cannot run in the kernel. */
#define SLL_HEADER 16
#define SLL_PACKET_TYPE 0
#define SLL_PROTOCOL 14

static int cooked_offset(struct sock_filter *insn) {
  if (insn->k >= (uint32_t)SKF_AD_OFF) return 1;
  if (insn->k >= SLL_HEADER) insn->k -= SLL_HEADER;
  else if (insn->k == SLL_PACKET_TYPE) insn->k = (uint32_t)(SKF_AD_OFF + SKF_AD_PKTTYPE);
  else if (insn->k == SLL_PROTOCOL) insn->k = (uint32_t)(SKF_AD_OFF + SKF_AD_PROTOCOL);
  else return 0;
  return 1;
}

#define MAX_FILTER_TEXT 65536

/* attachFilter(fd, linkType, snapLength, expression) -> 0, -errno, or libpcap's message (a
 * string) when the expression does not compile. Compiles `expression` as libpcap does for a live
 * capture of that link type (DLT_EN10MB, DLT_RAW or DLT_LINUX_SLL) and puts it on the packet
 * socket `fd` in place of its filter, atomically (SO_ATTACH_FILTER): no packet meets neither
 * filter, and no new socket is opened (opening one waits for RCU grace periods). Packets that
 * the old filter passed and are still in the ring are read as before. */
static napi_value attach_filter(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t fd, link, snap;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!get_int(env, argv, argc, 0, &fd) || !get_int(env, argv, argc, 1, &link) || !get_int(env, argv, argc, 2, &snap)) return NULL;
  size_t length = 0;
  if (argc < 4 || napi_get_value_string_utf8(env, argv[3], NULL, 0, &length) != napi_ok) {
    napi_throw_type_error(env, NULL, "argument 3 must be a string");
    return NULL;
  }
  if (fd < 0) return make_int(env, -EBADF);
  if ((link != DLT_EN10MB && link != DLT_RAW && link != DLT_LINUX_SLL) || snap <= 0 || length > MAX_FILTER_TEXT) return make_int(env, -EINVAL);
  char *text = malloc(length + 1);
  if (text == NULL) return make_int(env, -ENOMEM);
  napi_get_value_string_utf8(env, argv[3], text, length + 1, &length);
  pcap_t *dead = pcap_open_dead(link, snap);
  if (dead == NULL) {
    free(text);
    return make_int(env, -ENOMEM);
  }
  struct bpf_program program;
  napi_value result;
  if (pcap_compile(dead, &program, text, 1, PCAP_NETMASK_UNKNOWN) < 0) {
    napi_create_string_utf8(env, pcap_geterr(dead), NAPI_AUTO_LENGTH, &result);
    pcap_close(dead);
    free(text);
    return result;
  }
  free(text);
  int outcome = 0;
  struct sock_filter *code = NULL;
  if (program.bf_len == 0 || program.bf_len > BPF_MAXINSNS) outcome = -E2BIG;
  else if ((code = malloc(sizeof *code * program.bf_len)) == NULL) outcome = -ENOMEM;
  for (u_int i = 0; outcome == 0 && i < program.bf_len; i++) {
    const struct bpf_insn *from = &program.bf_insns[i];
    struct sock_filter *to = &code[i];
    to->code = from->code;
    to->jt = from->jt;
    to->jf = from->jf;
    to->k = from->k;
    int load = BPF_CLASS(to->code) == BPF_LD || BPF_CLASS(to->code) == BPF_LDX;
    int from_packet = BPF_MODE(to->code) == BPF_ABS || BPF_MODE(to->code) == BPF_IND || BPF_MODE(to->code) == BPF_MSH;
    if (link == DLT_LINUX_SLL && load && from_packet && !cooked_offset(to)) outcome = -EOPNOTSUPP;
  }
  if (outcome == 0) {
    struct sock_fprog attached = { .len = (unsigned short)program.bf_len, .filter = code };
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &attached, sizeof attached) < 0) outcome = -errno;
  }
  free(code);
  pcap_freecode(&program);
  pcap_close(dead);
  return make_int(env, outcome);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor functions[] = {
    { "openRaw", NULL, open_raw, NULL, NULL, NULL, napi_enumerable, NULL },
    { "sendTo", NULL, send_to, NULL, NULL, NULL, napi_enumerable, NULL },
    { "openNetlinkNetfilter", NULL, open_netlink_netfilter, NULL, NULL, NULL, napi_enumerable, NULL },
    { "openNetlinkGeneric", NULL, open_netlink_generic, NULL, NULL, NULL, napi_enumerable, NULL },
    { "netlinkSend", NULL, netlink_send, NULL, NULL, NULL, napi_enumerable, NULL },
    { "netlinkReceive", NULL, netlink_receive, NULL, NULL, NULL, napi_enumerable, NULL },
    { "openUdpOnDevice", NULL, open_udp_on_device, NULL, NULL, NULL, napi_enumerable, NULL },
    { "receiveFrom", NULL, receive_from, NULL, NULL, NULL, napi_enumerable, NULL },
    { "sendToUdp", NULL, send_to_udp, NULL, NULL, NULL, napi_enumerable, NULL },
    { "watch", NULL, watch_fd, NULL, NULL, NULL, napi_enumerable, NULL },
    { "unwatch", NULL, unwatch_fd, NULL, NULL, NULL, napi_enumerable, NULL },
    { "close", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL },
    { "packetSockets", NULL, packet_sockets, NULL, NULL, NULL, napi_enumerable, NULL },
    { "duplicate", NULL, duplicate_fd, NULL, NULL, NULL, napi_enumerable, NULL },
    { "closeInBackground", NULL, close_in_background, NULL, NULL, NULL, napi_enumerable, NULL },
    { "attachFilter", NULL, attach_filter, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
