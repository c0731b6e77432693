/* `vlmn make-dataset`: the procedurally drawn demo dataset that goes with the planted
 * model (PNG images + LLaVA detail_23k-style data.json or data.jsonl). */
#include "cli.h"
#include "vlmn/makemodel.h"

#include <string.h>

static int run(int argc, char **argv);

const struct vlmn_cmd vlmn_cmd_make_dataset = {
    "make-dataset", "draw the demo dataset (shapes + descriptions) for the planted model",
    "vlmn make-dataset [--preset planted] [-n N] [--seed S] [--format json|jsonl|qa] -o DIR\n"
    "  Draws N PNG images (default 400) of coloured shapes on plain backgrounds into\n"
    "  DIR/images/ and writes DIR/data.json in LLaVA's detail_23k layout\n"
    "  ([{\"id\",\"image\",\"conversations\":[{\"from\":\"human\",...},{\"from\":\"gpt\",...}]}])\n"
    "  or, with --format jsonl, DIR/data.jsonl ({\"id\",\"image\",\"question\",\"answer\"} per\n"
    "  line), or with --format qa DIR/qa.jsonl: the same images, the question \"Which\n"
    "  shapes are in the image?\" and a short reference answer from the scene truth\n"
    "  (\"a red circle and a green square\"), for vlmn prune-eval.\n"
    "  Image paths are relative to DIR. DIR/shapes.json lists what each image shows,\n"
    "  with each shape's ground-truth mask as COCO RLE (docs/segmenter.md).\n"
    "  The same seed gives the same files.\n",
    run,
};

static int run(int argc, char **argv)
{
    const char *out = NULL, *v;
    long n = 400, seed = 1;
    vlmn_mm_format fmt = VLMN_MM_JSON;
    for (int i = 1; i < argc; i++) {
        int r;
        if ((r = cli_opt(argc, argv, &i, "preset", 0, &v))) {
            if (r < 0) return 2;
            if (strcmp(v, "planted")) return cli_errorf("make-dataset", 2, "unknown preset '%s' (only: planted)", v);
        } else if ((r = cli_opt(argc, argv, &i, "output", 'o', &v))) {
            if (r < 0) return 2;
            out = v;
        } else if ((r = cli_opt(argc, argv, &i, "count", 'n', &v))) {
            if (r < 0 || cli_parse_long(v, 1, 1000000, &n)) return cli_errorf("make-dataset", 2, "bad -n value");
        } else if ((r = cli_opt(argc, argv, &i, "seed", 0, &v))) {
            if (r < 0 || cli_parse_long(v, 0, 0x7fffffffffffffffL, &seed)) return cli_errorf("make-dataset", 2, "bad --seed value");
        } else if ((r = cli_opt(argc, argv, &i, "format", 0, &v))) {
            if (r < 0) return 2;
            if (!strcmp(v, "json")) fmt = VLMN_MM_JSON;
            else if (!strcmp(v, "jsonl")) fmt = VLMN_MM_JSONL;
            else if (!strcmp(v, "qa")) fmt = VLMN_MM_QA;
            else return cli_errorf("make-dataset", 2, "unknown format '%s' (json, jsonl or qa)", v);
        } else if (cli_unknown_option(&vlmn_cmd_make_dataset, argv, i)) {
            return 2;
        } else {
            fprintf(stderr, "vlmn make-dataset: unexpected argument '%s'\n", argv[i]);
            return cli_usage(&vlmn_cmd_make_dataset);
        }
    }
    if (!out) return cli_usage(&vlmn_cmd_make_dataset);
    vlmn_status st = vlmn_mm_make_dataset(out, (int)n, (uint64_t)seed, fmt);
    if (st) return cli_fail("make-dataset", st);
    return 0;
}
