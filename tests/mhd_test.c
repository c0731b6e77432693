/* Loopback HTTP harness of the test servers; see mhd_test.h. */
#include "mhd_test.h"

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;

static void on_term(int sig)
{
    (void)sig;
    g_stop = 1;
}

void mhd_body_append(mhd_body *b, const char *data, size_t n, size_t max)
{
    if (b->too_big || b->n + n > max) {
        b->too_big = true;
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->n + n + 1) cap *= 2;
        char *nb = realloc(b->body, cap);
        if (!nb) {
            b->too_big = true;
            return;
        }
        b->body = nb;
        b->cap = cap;
    }
    memcpy(b->body + b->n, data, n);
    b->n += n;
    b->body[b->n] = 0;
}

static void done(void *cls, struct MHD_Connection *c, void **ptr, enum MHD_RequestTerminationCode tc)
{
    (void)cls, (void)c, (void)tc;
    mhd_body *b = *ptr;
    if (b) {
        free(b->body);
        free(b);
    }
    *ptr = NULL;
}

int mhd_serve(const char *name, MHD_AccessHandlerCallback handle, const char *port_file)
{
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0, NULL,
                         NULL, handle, NULL, MHD_OPTION_SOCK_ADDR, &a, MHD_OPTION_NOTIFY_COMPLETED, done, NULL,
                         MHD_OPTION_CONNECTION_LIMIT, 2000u, MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "%s: cannot start on 127.0.0.1\n", name);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
    FILE *f = fopen(tmp, "w");
    bool ok = f && fprintf(f, "%u\n", (unsigned)info->port) > 0;
    if (f && fclose(f)) ok = false;
    if (!ok || rename(tmp, port_file)) {
        fprintf(stderr, "%s: cannot write the port to %s\n", name, port_file);
        MHD_stop_daemon(d);
        return 1;
    }
    while (!g_stop) usleep(20000);
    MHD_stop_daemon(d);
    return 0;
}
