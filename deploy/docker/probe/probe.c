/*
 * probe: a tiny static health probe for FROM-scratch/distroless images,
 * which have no shell, curl or nc for a container healthcheck to call.
 *
 *   probe tcp HOST:PORT            exit 0 if a TCP connection opens
 *   probe http HOST:PORT /PATH     exit 0 if GET /PATH answers HTTP 2xx
 *
 * Parley's services bind their gRPC port only after they have connected to
 * NATS and replayed the log, so "the port accepts connections" means ready;
 * Kubernetes uses the native gRPC health probe instead. NATS is checked with
 * its monitoring endpoint, `probe http 127.0.0.1:8222 /healthz`.
 * Numeric IPv4 addresses only, on purpose: a probe must not depend on DNS.
 * Build: gcc -static -Os -o probe probe.c
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int open_tcp(const char *hostport) {
    char host[64];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host) return -1;
    memcpy(host, hostport, colon - hostport);
    host[colon - hostport] = '\0';
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval timeout = {.tv_sec = 3};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "tcp") == 0) {
        int fd = open_tcp(argv[2]);
        if (fd < 0) return 1;
        close(fd);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "http") == 0) {
        int fd = open_tcp(argv[2]);
        if (fd < 0) return 1;
        char request[512];
        int n = snprintf(request, sizeof request,
                         "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n", argv[3], argv[2]);
        if (n <= 0 || (size_t)n >= sizeof request || write(fd, request, n) != n) return 1;
        char status[32] = {0};
        ssize_t got = read(fd, status, sizeof status - 1);
        close(fd);
        /* "HTTP/1.x 2xx ..." */
        return (got >= 12 && strncmp(status, "HTTP/1.", 7) == 0 && status[9] == '2') ? 0 : 1;
    }
    fprintf(stderr, "usage: probe tcp HOST:PORT | probe http HOST:PORT /PATH\n");
    return 2;
}
