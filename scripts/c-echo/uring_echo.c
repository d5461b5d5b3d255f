/*
 * uring_echo.c — a minimal C echo server on io_uring: the floor of what a
 * completion ring costs per message, for issue 12's question "is this goal
 * out of reach with glommio as the executor?". If this server, with every
 * cheap trick the kernel offers and nothing else to do, does not reach a
 * ratio to epoll_echo.c, no executor on the ring will.
 *
 * Single-threaded; echoes every byte back. What it uses, all of which
 * ringlet gives up for a reason (docs/bench/history.md, "Levers"):
 *   - DEFER_TASKRUN + SINGLE_ISSUER (else COOP_TASKRUN, else none):
 *     completions run only when this thread asks, in its one enter;
 *   - a multishot accept into the ring's file table (direct descriptors:
 *     no file reference taken per operation; TCP_NODELAY is inherited from
 *     the listener, as no setsockopt can reach a direct descriptor);
 *   - per message one submission of two linked SQEs: the echo's send
 *     (MSG_WAITALL, its success posting no completion) and the next
 *     receive into the same buffer, so one completion per message and the
 *     wait for the next one in the same io_uring_enter.
 * A connection whose peer stops reading holds its send, and its receive
 * waits behind it: back-pressure as in epoll_echo.c.
 *
 * Build: cc -O2 -o uring_echo uring_echo.c -luring   (liburing-dev, 2.2+)
 * Run:   uring_echo PORT [MODE]   (listens on 127.0.0.1:PORT; MODE: defer
 *        (the default), coop or plain, to set up the ring with no more than
 *        that: see what each setup flag is worth)
 * Used by: scripts/bench-vs-epoll.sh --c-echo (when liburing is installed)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 16384
#define ENTRIES 4096
#define SLOTS 16384 /* direct descriptors: the most connections at once */

enum { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_CLOSE };

struct conn {
    char buf[BUF];
};

static struct io_uring ring;
static struct conn *conns[SLOTS];

static struct io_uring_sqe *sqe(void) {
    struct io_uring_sqe *s;
    while ((s = io_uring_get_sqe(&ring)) == NULL) io_uring_submit(&ring);
    return s;
}

static void tag(struct io_uring_sqe *s, unsigned slot, unsigned op) {
    io_uring_sqe_set_data64(s, ((__u64)slot << 8) | op);
}

static void arm_accept(int lfd) {
    struct io_uring_sqe *s = sqe();
    io_uring_prep_multishot_accept_direct(s, lfd, NULL, NULL, 0);
    tag(s, 0, OP_ACCEPT);
}

static void recv_into(unsigned slot) {
    struct io_uring_sqe *s = sqe();
    io_uring_prep_recv(s, (int)slot, conns[slot]->buf, BUF, 0);
    io_uring_sqe_set_flags(s, IOSQE_FIXED_FILE);
    tag(s, slot, OP_RECV);
}

/* The echo and the next receive, linked: the receive starts once the send
 * has handed every byte to the socket (the buffer is free again). A failed
 * or short send cancels the receive, whose completion then ends the
 * connection. */
static void echo(unsigned slot, unsigned len) {
    struct io_uring_sqe *s = sqe();
    io_uring_prep_send(s, (int)slot, conns[slot]->buf, len, MSG_WAITALL);
    io_uring_sqe_set_flags(s, IOSQE_FIXED_FILE | IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS);
    tag(s, slot, OP_SEND);
    recv_into(slot);
}

static void drop(unsigned slot) {
    struct io_uring_sqe *s = sqe();
    io_uring_prep_close_direct(s, slot);
    io_uring_sqe_set_flags(s, IOSQE_CQE_SKIP_SUCCESS);
    tag(s, slot, OP_CLOSE);
    free(conns[slot]);
    conns[slot] = NULL;
}

static int setup(const char *want) {
    static const struct {
        unsigned flags;
        const char *name;
    } modes[] = {
        {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "DEFER_TASKRUN"},
        {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN"},
        {0, "plain"},
    };
    size_t i = 0;
    if (strcmp(want, "coop") == 0) i = 1;
    else if (strcmp(want, "plain") == 0) i = 2;
    else if (strcmp(want, "defer") != 0) {
        fprintf(stderr, "uring_echo: MODE is defer, coop or plain, not %s\n", want);
        return -1;
    }
    for (; i < sizeof modes / sizeof modes[0]; i++) {
        struct io_uring_params p = {.flags = modes[i].flags};
        int r = io_uring_queue_init_params(ENTRIES, &ring, &p);
        if (r == 0) {
            fprintf(stderr, "uring_echo: ring set up with %s\n", modes[i].name);
            return 0;
        }
        if (r != -EINVAL) {
            fprintf(stderr, "uring_echo: io_uring_setup: %s\n", strerror(-r));
            return -1;
        }
    }
    return -1;
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s PORT [defer|coop|plain]\n", argv[0]);
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* inherited */
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((unsigned short)atoi(argv[1])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) || listen(lfd, 4096)) {
        perror("bind/listen");
        return 1;
    }
    struct rlimit nofile = {SLOTS + 64, SLOTS + 64};
    setrlimit(RLIMIT_NOFILE, &nofile); /* the file table counts against it */
    if (setup(argc == 3 ? argv[2] : "defer")) return 1;
    int r = io_uring_register_files_sparse(&ring, SLOTS);
    if (r) {
        fprintf(stderr, "uring_echo: registering %d file slots: %s\n", SLOTS, strerror(-r));
        return 1;
    }
    arm_accept(lfd);
    for (;;) {
        r = io_uring_submit_and_wait(&ring, 1);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
            fprintf(stderr, "uring_echo: io_uring_enter: %s\n", strerror(-r));
            return 1;
        }
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            unsigned slot = (unsigned)(cqe->user_data >> 8), op = cqe->user_data & 0xff;
            int res = cqe->res;
            switch (op) {
            case OP_ACCEPT:
                if (!(cqe->flags & IORING_CQE_F_MORE)) arm_accept(lfd);
                if (res < 0) break; /* e.g. the file table is full */
                conns[res] = malloc(sizeof(struct conn));
                if (conns[res] == NULL) {
                    drop((unsigned)res);
                    break;
                }
                recv_into((unsigned)res);
                break;
            case OP_RECV:
                if (res <= 0) drop(slot); /* closed, failed, or cancelled by a failed send */
                else echo(slot, (unsigned)res);
                break;
            default: /* a failed send or close: the receive's completion ends it */
                break;
            }
        }
        io_uring_cq_advance(&ring, seen);
    }
}
