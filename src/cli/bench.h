/* `vlmn bench` subcommands. cmd_bench.c holds the table that dispatches on argv[1];
 * each subcommand lives in its own file (bench_gemm.c, later bench_forward.c) and gets
 * argv with argv[0] = the subcommand name. Return: 0 ok, 1 failure, 2 usage. */
#ifndef VLMN_CLI_BENCH_H
#define VLMN_CLI_BENCH_H

#include <stdint.h>

#include "cli.h"

/* For cli_unknown_option: the suggestions come from the whole bench usage. */
extern const struct vlmn_cmd vlmn_cmd_bench;

int bench_gemm(int argc, char **argv);
int bench_record(int argc, char **argv);
int bench_peak(int argc, char **argv);
int bench_attention(int argc, char **argv);
int bench_classify(int argc, char **argv);
int bench_forward(int argc, char **argv);
int bench_llm(int argc, char **argv);
int bench_decode(int argc, char **argv);

/* Shared by the subcommands (cmd_bench.c). */
double bench_wall(void);      /* monotonic seconds */
double bench_cpu(void);       /* process CPU seconds, all threads */
/* xorshift64: the next state, and 24 random bits of it as a float in [0, 1). */
float bench_unit(uint64_t *state);

#endif
