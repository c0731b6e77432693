/* `vlmn prune-eval RUN --data QA -m TEXT --mmproj MMPROJ -o EVAL`: the paper's pruning
 * experiment (B.1, Table 3, Fig. 12) as one resumable command; see docs/generate.md. */
#include "cli.h"
#include "model_opts.h"

#include "vlmn/eval.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

extern const struct vlmn_cmd vlmn_cmd_prune_eval;

static const char USAGE[] =
    "vlmn prune-eval RUN --data QA.jsonl -m TEXT.gguf --mmproj MMPROJ.gguf -o EVAL\n"
    "                [--tau 0.9,0.8,0.7,0.6] [--random-seeds K] [--images DIR] [--max-tokens N]\n"
    "                [--batch B] [--template T] [--mode pad|crop] [--max-tiles N] [--precision P] [-t N]\n"
    "\n"
    "Answers every question of QA (a dataset with reference answers, e.g. vlmn make-dataset\n"
    "--format qa) with the full model, with the neurons of RUN's classification that have\n"
    "p_u >= tau pruned (each tau), and with K random masks of the same size per tau (default\n"
    "K = 3); greedy decoding. Grades offline: exact match, token F1, mean log-likelihood of\n"
    "the reference answer (teacher-forced). Writes EVAL/eval.sqlite (every answer and\n"
    "grade; judge_* columns are left NULL for an LLM judge), EVAL/table3.txt (printed\n"
    "too) and EVAL/fig12.svg. Run it again after an interruption: answers already\n"
    "stored are kept, the rest is generated.\n"
    "\n"
    "  --tau LIST           thresholds on p_u in [0, 1] (default 0.9,0.8,0.7,0.6)\n"
    "  --random-seeds K     random masks per tau (default 3; 0 = none)\n"
    "  --max-tokens N       answer length limit (default 32)\n"
    "  --batch B            questions decoded together (default 8)\n"
    "  --judge URL          grade every answer with an LLM judge (Video-ChatGPT protocol: yes/no\n"
    "                       and score 0..5) at this OpenAI-compatible base URL; adds judge rows\n"
    "  --judge-model NAME   the judge's model (e.g. gpt-3.5-turbo); with --judge\n"
    "  --judge-key-env NAME environment variable of its key (OPENAI_API_KEY)\n"
    "  --judge-concurrency N  judge requests in flight (8)\n"
    "  other options as for vlmn generate\n";

static int run(int argc, char **argv)
{
    const char *cmd = "prune-eval";
    const char *run_dir = NULL, *data = NULL, *images = NULL, *out = NULL, *tau_s = "0.9,0.8,0.7,0.6", *v;
    long seeds = 3, max_tokens = 32, batch = 8;
    cli_model_opts mo = cli_model_opts_init("auto", true);
    const char *judge = NULL, *judge_model = NULL, *judge_key = NULL;
    long judge_conc = 8;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = cli_model_opt(cmd, argc, argv, &i, &mo)) != 0) {
            if (r < 0) return 2;
            continue;
        }
        CLI_STR_OPT("data", 0, data)
        CLI_STR_OPT("images", 0, images)
        CLI_STR_OPT("output", 'o', out)
        CLI_STR_OPT("tau", 0, tau_s)
        CLI_LONG_OPT("random-seeds", 0, seeds, 0, 100, "--random-seeds")
        CLI_LONG_OPT("max-tokens", 0, max_tokens, 1, 4096, "--max-tokens")
        CLI_LONG_OPT("batch", 0, batch, 1, 256, "--batch")
        CLI_STR_OPT("judge", 0, judge)
        CLI_STR_OPT("judge-model", 0, judge_model)
        CLI_STR_OPT("judge-key-env", 0, judge_key)
        CLI_LONG_OPT("judge-concurrency", 0, judge_conc, 1, 1024, "--judge-concurrency")
        if (cli_unknown_option(&vlmn_cmd_prune_eval, argv, i)) return 2;
        if ((argv[i][0] != '-' || cli_after_dashdash(argv, i)) && !run_dir) {
            run_dir = argv[i];
            continue;
        }
        cli_errorf(cmd, 2, "unexpected argument '%s'", argv[i]);
        return cli_usage(&vlmn_cmd_prune_eval);
    }
    if (!run_dir || !data || !mo.model || !mo.mmproj || !out) {
        cli_errorf(cmd, 2, "RUN, --data, -m, --mmproj and -o are required");
        return cli_usage(&vlmn_cmd_prune_eval);
    }
    if (!judge != !judge_model) return cli_errorf(cmd, 2, "--judge and --judge-model go together");
    double tau[64];
    int n_tau = 0;
    for (const char *p = tau_s; *p;) {
        char *end;
        errno = 0;
        double t = strtod(p, &end);
        if (end == p || errno || n_tau == 64) return cli_errorf(cmd, 2, "bad --tau '%s' (e.g. 0.9,0.8)", tau_s);
        tau[n_tau++] = t;
        p = end;
        if (*p == ',') p++;
        else if (*p) return cli_errorf(cmd, 2, "bad --tau '%s' (e.g. 0.9,0.8)", tau_s);
    }
    if (n_tau == 0) return cli_errorf(cmd, 2, "--tau: no value");
    static const char *const templates[] = {"llava-v1", "vicuna-v1", "internvl", NULL};
    vlmn_img_mode mode;
    int bad = cli_model_opts_check(cmd, &mo, templates, &mode);
    if (bad) return bad;
    vlmn_prune_eval_opts o = {
        .run_dir = run_dir, .data = data, .images = images, .model = mo.model, .mmproj = mo.mmproj, .out_dir = out,
        .tau = tau, .n_tau = n_tau, .n_random_seeds = (int)seeds, .batch = (int)batch, .n_threads = (int)mo.threads,
        .precision = mo.prec,
        .qa = {.template_name = mo.tmpl, .mode = mode, .max_tiles = (int)mo.max_tiles,
               .gen = {.max_tokens = (int)max_tokens, .temperature = 0.0f, .top_p = 1.0f, .eos = -1}},
        .table = stdout, .progress = stderr};
    if (judge) {
        vlmn_llm_opts_default(&o.judge);
        o.judge.base_url = judge;
        o.judge.concurrency = (int)judge_conc;
        if (judge_key) o.judge.api_key_env = judge_key;
        static char cache[4200];
        snprintf(cache, sizeof cache, "%s/judge-cache.sqlite", out);
        o.judge.cache_path = cache; /* a rerun asks nothing already answered */
        o.judge_model = judge_model;
    }
    vlmn_status st = vlmn_prune_eval(&o);
    if (st) return cli_fail(cmd, st);
    return 0;
}

const struct vlmn_cmd vlmn_cmd_prune_eval = {
    "prune-eval", "prune unknown / random neurons and grade the answers on a QA set (paper Table 3, Fig. 12)", USAGE,
    run};
