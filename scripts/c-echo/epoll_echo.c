/*
 * epoll_echo.c — a minimal C echo server on epoll: the yardstick for
 * ringlet's echo numbers (issue 4: "≥ 1.0× any C echo server put in the
 * table"). Single-threaded, level-triggered, non-blocking; echoes every
 * byte back. A connection whose peer stops reading keeps at most one
 * buffer pending, and is not read from until it has drained.
 *
 * Per message it makes the classic three calls: epoll_wait (shared by
 * whatever is ready), read, write.
 *
 * Build: cc -O2 -o epoll_echo epoll_echo.c
 * Run:   epoll_echo PORT      (listens on 127.0.0.1:PORT)
 * Used by: scripts/bench-vs-epoll.sh --c-echo
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 65536
#define EVENTS 256

struct conn {
    int fd;
    size_t off, len; /* pending bytes: buf[off..len] */
    char buf[BUF];
};

static void drop(struct conn *c) {
    close(c->fd); /* also removes it from the epoll set */
    free(c);
}

static void watch(int ep, struct conn *c, unsigned events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Write what is pending; 0 when done, 1 when the socket is full, -1 on error. */
static int flush(struct conn *c) {
    while (c->off < c->len) {
        ssize_t w = write(c->fd, c->buf + c->off, c->len - c->off);
        if (w < 0) return errno == EAGAIN ? 1 : -1;
        c->off += (size_t)w;
    }
    c->off = c->len = 0;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((unsigned short)atoi(argv[1])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) || listen(lfd, 4096)) {
        perror("bind/listen");
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    struct epoll_event evs[EVENTS];
    for (;;) {
        int n = epoll_wait(ep, evs, EVENTS, -1);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) { /* the listener */
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *nc = malloc(sizeof *nc);
                    if (!nc) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    nc->off = nc->len = 0;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (c->len > 0) { /* writable again: drain, then read again */
                int r = flush(c);
                if (r < 0) drop(c);
                else if (r == 0) watch(ep, c, EPOLLIN);
                continue;
            }
            ssize_t r = read(c->fd, c->buf, BUF);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                drop(c);
                continue;
            }
            if (r < 0) continue;
            c->off = 0;
            c->len = (size_t)r;
            int f = flush(c);
            if (f < 0) drop(c);
            else if (f == 1) watch(ep, c, EPOLLOUT);
        }
    }
}
