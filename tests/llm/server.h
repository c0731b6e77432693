/* Starting and stopping tests/llm/llm_server.c from a test: fork/exec on an ephemeral
 * 127.0.0.1 port (read back from its port file), SIGTERM + wait to stop. */
#ifndef VLMN_TEST_LLM_SERVER_H
#define VLMN_TEST_LLM_SERVER_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct test_server {
    pid_t pid;
    int port;
    char base_url[64];
    char port_file[512];
} test_server;

/* 0 on success; the key the server checks for comes from $VLMN_TEST_KEY. */
static inline int test_server_start(test_server *s, const char *tmp)
{
    const char *bin = getenv("VLMN_LLM_SERVER");
    if (!bin || !*bin) {
        fprintf(stderr, "  VLMN_LLM_SERVER not set (libmicrohttpd missing at build time?)\n");
        return -1;
    }
    snprintf(s->port_file, sizeof s->port_file, "%s/llm_server.%d.port", tmp, (int)getpid());
    unlink(s->port_file);
    s->pid = fork();
    if (s->pid < 0) return -1;
    if (s->pid == 0) {
        execl(bin, bin, "--port-file", s->port_file, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        FILE *f = fopen(s->port_file, "r");
        if (f) {
            int ok = fscanf(f, "%d", &s->port) == 1;
            fclose(f);
            if (ok) {
                snprintf(s->base_url, sizeof s->base_url, "http://127.0.0.1:%d/v1", s->port);
                return 0;
            }
        }
        usleep(10000);
    }
    fprintf(stderr, "  llm_server did not start\n");
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    return -1;
}

static inline void test_server_stop(test_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    unlink(s->port_file);
}
#endif
