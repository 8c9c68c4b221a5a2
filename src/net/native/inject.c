/*
 * The few socket calls Node cannot make: raw IP sockets with the header included (to re-send a
 * vouched-for packet to R2's own address with its original source kept) and a NETLINK_NETFILTER
 * socket (to insert a conntrack entry before that). Everything else, packets and netlink
 * messages alike, is built and parsed in TypeScript (src/net/inject.ts, src/net/conntrack.ts).
 *
 * Every function checks its arguments and reports failure as a negative errno number (or throws
 * a TypeError for a wrong argument type), so a bad call never takes the process down. Nothing
 * blocks for long: sends use MSG_DONTWAIT and the netlink read waits at most the given timeout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <node_api.h>

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

/* openNetlinkNetfilter() -> fd, or -errno. The kernel checks CAP_NET_ADMIN per request, not here. */
static napi_value open_netlink_netfilter(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0) return make_int(env, -errno);
  /* nl_pid 0: the kernel picks a unique port id; no multicast groups, so only answers arrive. */
  struct sockaddr_nl local = { .nl_family = AF_NETLINK };
  if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
    int error = errno;
    close(fd);
    return make_int(env, -error);
  }
  return make_int(env, fd);
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

/* close(fd) -> 0, or -errno. */
static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!get_int(env, argv, argc, 0, &fd)) return NULL;
  if (fd < 0) return make_int(env, -EBADF);
  return make_int(env, close(fd) < 0 ? -errno : 0);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor functions[] = {
    { "openRaw", NULL, open_raw, NULL, NULL, NULL, napi_enumerable, NULL },
    { "sendTo", NULL, send_to, NULL, NULL, NULL, napi_enumerable, NULL },
    { "openNetlinkNetfilter", NULL, open_netlink_netfilter, NULL, NULL, NULL, napi_enumerable, NULL },
    { "netlinkSend", NULL, netlink_send, NULL, NULL, NULL, napi_enumerable, NULL },
    { "netlinkReceive", NULL, netlink_receive, NULL, NULL, NULL, napi_enumerable, NULL },
    { "close", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
