/* `vlmn bench SUBCOMMAND ...`: performance measurements. The table below maps a
 * subcommand name to its function (declared in bench.h); add a row to add one. */
#include "cli.h"
#include "bench.h"

#include <string.h>
#include <time.h>

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double bench_wall(void) { return clock_s(CLOCK_MONOTONIC); }
double bench_cpu(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }

float bench_unit(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (float)((*s >> 40) & 0xffffff) / (float)0x1000000;
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommands[] = {
    {"gemm", bench_gemm, "GEMM GFLOP/s and fraction of the measured machine peak"},
    {"record", bench_record, "recorder cost per sample, alone and as overhead over the forward pass"},
    {"attention", bench_attention, "attention ms and GFLOP/s at LLaVA shapes"},
    {"peak", bench_peak, "the machine's f32 / bf16 / int8 peaks with register-resident loops"},
    {"forward", bench_forward, "LLaVA forward tokens/s with and without capture, peak RSS"},
    {"decode", bench_decode, "decode tokens/s at batch 1 and 8, per layer and extrapolated, against memory bandwidth"},
    {"classify", bench_classify, "neuron classification of a LLaVA-7B-sized state (in memory, run store)"},
    {"llm", bench_llm, "LLM client requests/s at C in flight vs 1, CPU cost of a 5-image explainer prompt"},
};

static int run(int argc, char **argv);

const struct vlmn_cmd vlmn_cmd_bench = {
    "bench", "measure kernel speed against the machine's peak",
    "vlmn bench gemm [--type bf16|f16|q8_0|q4_k|f32] [--m M --n N --k K]\n"
    "                [--prec fast|fastest|exact] [--isa ref|avx2|avx512] [-t|--threads T]\n"
    "                [--reps R] [--json]\n"
    "  Times C[M x N] = A[M x K] W^T with random weights of the given type (default\n"
    "  bf16, M=680 N=11008 K=4096, fast precision, all CPUs, 5 reps; the best rep counts)\n"
    "  and, in the same run, the machine's peak with register-resident loops (f32 FMA,\n"
    "  bf16 vdpbf16ps, int8 vpdpbusd on all threads). Prints GFLOP/s and the fraction of\n"
    "  the peak that bounds the kernel used; --json prints one JSON object.\n"
    "vlmn bench record [-m TEXT.gguf --mmproj MMPROJ.gguf] [--layers L --tokens T --n-ff F]\n"
    "                  [--top-n N] [-t T] [--samples S] [--reps R] [--answer-words W] [--json]\n"
    "  Without a model: the recorder alone on random blocks (default LLaVA-1.5-7B shapes:\n"
    "  32 x [680 x 11008], top-50), warm-up and steady-state seconds per sample. With a\n"
    "  model: one LLaVA sample (random image, W-word answer) forwarded with the capture\n"
    "  off and on, alternating R times; prints the recording overhead in percent.\n"
    "vlmn bench peak [-t|--threads T] [--json]\n"
    "  Only the peaks (f32 FMA, bf16 vdpbf16ps, int8 vpdpbusd), best of 5 runs.\n"
    "vlmn bench attention [--tokens T] [--heads H] [--kv-heads H] [--head-dim D]\n"
    "                     [--causal|--full] [--isa ...] [-t T] [--reps R] [--json]\n"
    "  Times vlmn_attention (default T=680, 32 heads of 128, causal).\n"
    "vlmn bench forward -m TEXT.gguf [--mmproj MMPROJ.gguf] [--tokens 680] [--image-tokens 576]\n"
    "                   [-t|--threads T] [--reps 2] [--no-capture|--capture] [--top-n 50]\n"
    "                   [--exact|--fastest] [--json]\n"
    "  Runs the engine on a LLaVA-shaped sample (random ids; with --mmproj, a random image\n"
    "  whose 576 embeddings take positions 5..580, vision tower timed separately), after\n"
    "  one warm-up pass: best of R reps without capture and with the real recorder as\n"
    "  capture hook (--capture: only with, --no-capture: only without). Prints text\n"
    "  decoder tokens/s, seconds per sample, a per-op breakdown, the capture overhead,\n"
    "  peak RSS against the weight and recorder sizes, and the bf16/int8 peaks measured in\n"
    "  the same run.\n"
    "vlmn bench decode [-m TEXT.gguf | --layers 2 --type bf16,q8_0 [--dir DIR] [--keep]]\n"
    "                  [--batch 1,8] [--tokens 128] [--prompt 1] [-t T] [--reps 1]\n"
    "                  [--full-layers 32] [--bw-mib 1024] [--exact|--fastest] [--json]\n"
    "  Decode speed as vlmn generate decodes (one step per token, one row per sequence,\n"
    "  its own KV cache each). Without -m, writes a text model of the llava-7b preset's\n"
    "  widths with --layers layers per --type (--preset tiny for tests) and deletes it\n"
    "  unless --keep. Per type and batch: tokens/s of all sequences together, ms per\n"
    "  step, per layer and for the logits, tokens/s extrapolated to --full-layers, the\n"
    "  weight bytes per step over the step time as a fraction of the memory read\n"
    "  bandwidth measured in the same run, and the ratio to batch 1.\n"
    "vlmn bench classify [--layers 32] [--ff 11008] [--top-n 50] [--dir DIR] [--keep] [--reps 3]\n"
    "  Writes a synthetic run of that shape (1.3 GB for the defaults; a temporary folder in\n"
    "  /tmp unless --dir) and times the classification in memory and as `vlmn classify`\n"
    "  does it (open, classify, save); --keep leaves the run for `time vlmn classify DIR`.\n"
    "vlmn bench llm [--base-url URL] [--model ok] [--requests 5000] [--concurrency 64]\n"
    "               [--baseline-requests 200] [--images 5] [--width 640] [--height 480] [--reps 3]\n"
    "  With --base-url (an OpenAI-compatible server; the tests' vlmn_llm_server answers\n"
    "  model 'ok' at once): N distinct chat requests at C in flight and, in the same run, a\n"
    "  baseline with 1 in flight; prints requests/s, the ratio and client CPU per request.\n"
    "  Always: CPU cost of one Fig. 10 explainer prompt with K modulated W x H images\n"
    "  (draw, PNG, chat body) against the PNG encoding alone.\n",
    run,
};

static int run(int argc, char **argv)
{
    if (argc < 2) return cli_usage(&vlmn_cmd_bench);
    if (cli_unknown_option(&vlmn_cmd_bench, argv, 1)) return 2;
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (!strcmp(argv[1], subcommands[i].name)) return subcommands[i].run(argc - 1, argv + 1);
    cli_errorf("bench", 2, "no subcommand '%s'", argv[1]);
    return cli_usage(&vlmn_cmd_bench);
}
