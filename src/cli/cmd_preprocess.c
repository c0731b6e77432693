/* `vlmn preprocess`: one image -> the LLaVA-1.5 vision input tensor [3, S, S] float32,
 * written as .npy, with S, mean and std taken from the mmproj GGUF (clip.vision.*). */
#include "cli.h"
#include "vlmn/gguf.h"
#include "vlmn/image.h"
#include "vlmn/npy.h"
#include "core/alloc.h"
#include "core/file.h"

#include <string.h>

#define MAX_IMAGE_SIZE 4096

extern const struct vlmn_cmd vlmn_cmd_preprocess;

static const char usage[] =
    "vlmn preprocess --mmproj MMPROJ.gguf --image IMG [--mode pad|crop] -o OUT.npy\n"
    "  Decode IMG (JPEG or PNG, as PIL's convert('RGB')) and preprocess it as LLaVA-1.5:\n"
    "    pad   (default) pad to a square with the mean colour, resize to S x S (LLaVA-1.5)\n"
    "    crop  resize the shortest edge to S, centre crop S x S (HF CLIPImageProcessor)\n"
    "  Resizing is PIL's BICUBIC; pixels are scaled to [0, 1] and normalised with the\n"
    "  mmproj's clip.vision.image_mean / image_std; S is clip.vision.image_size.\n"
    "  OUT.npy: float32 array of shape [3, S, S] (channels R, G, B), written atomically.\n"
    "  --image -  reads the image from stdin; -o - writes the .npy to stdout.\n";

static int run(int argc, char **argv)
{
    const char *mmproj = NULL, *image = NULL, *mode_s = "pad", *outp = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        if ((r = cli_opt(argc, argv, &i, "mmproj", 0, &v))) mmproj = v;
        else if ((r = cli_opt(argc, argv, &i, "image", 0, &v))) image = v;
        else if ((r = cli_opt(argc, argv, &i, "mode", 0, &v))) mode_s = v;
        else if ((r = cli_opt(argc, argv, &i, "output", 'o', &v))) outp = v;
        else if (cli_unknown_option(&vlmn_cmd_preprocess, argv, i)) return 2;
        else {
            fprintf(stderr, "vlmn preprocess: unknown argument '%s'\n", argv[i]);
            return cli_usage(&vlmn_cmd_preprocess);
        }
        if (r < 0 || !v) return cli_usage(&vlmn_cmd_preprocess);
    }
    if (!mmproj || !image || !outp) {
        fprintf(stderr, "vlmn preprocess: --mmproj, --image and -o are required\n");
        return cli_usage(&vlmn_cmd_preprocess);
    }
    vlmn_img_mode mode;
    if (vlmn_img_parse_mode(mode_s, &mode)) {
        cli_fail("preprocess", VLMN_E_ARG);
        return 2;
    }

    vlmn_gguf *g = NULL;
    vlmn_image *im = NULL;
    float *out = NULL;
    int rc = 1;
    uint32_t S = 0;
    float mean[3], stdv[3];
    vlmn_status st = vlmn_gguf_open(mmproj, &g);
    if (!st) st = vlmn_gguf_get_u32(g, "clip.vision.image_size", &S);
    if (!st && (S < 1 || S > MAX_IMAGE_SIZE))
        st = vlmn_error(VLMN_E_RANGE, "%s: key clip.vision.image_size: %u not in [1, %d]", mmproj,
                        S, MAX_IMAGE_SIZE);
    if (!st) st = vlmn_gguf_get_arr_f32(g, "clip.vision.image_mean", mean, 3);
    if (!st) st = vlmn_gguf_get_arr_f32(g, "clip.vision.image_std", stdv, 3);
    if (st) goto done;
    if (!strcmp(image, "-")) { /* the image's bytes on stdin */
        unsigned char *bytes = NULL;
        size_t nbytes = 0;
        if (!(st = vlmn_file_read_stream(stdin, "stdin", VLMN_IMG_MAX_FILE_BYTES, "image", &bytes, &nbytes)))
            st = vlmn_img_decode_memory(bytes, nbytes, "stdin", &im);
        vlmn_free(bytes);
        if (st) goto done;
    } else if ((st = vlmn_img_load(image, &im))) {
        goto done;
    }
    out = vlmn_malloc(sizeof(float) * 3 * (size_t)S * (size_t)S);
    if (!out) {
        st = vlmn_error(VLMN_E_NOMEM, "out of memory");
        goto done;
    }
    if ((st = vlmn_img_preprocess(im, mode, (int)S, mean, stdv, out))) {
        vlmn_error_prefix(st, "%s", image);
        goto done;
    }
    int64_t shape[3] = {3, S, S};
    if (!strcmp(outp, "-")) {
        if ((st = vlmn_npy_write_fd(1, "stdout", VLMN_NPY_F32, 3, shape, out))) goto done;
    } else if ((st = vlmn_npy_write_f32(outp, 3, shape, out))) {
        goto done;
    }
    rc = 0;
done:
    if (st) rc = cli_fail("preprocess", st);
    vlmn_free(out);
    vlmn_img_free(im);
    vlmn_gguf_close(g);
    return rc;
}

const struct vlmn_cmd vlmn_cmd_preprocess = {
    "preprocess", "image -> LLaVA vision input [3, S, S] float32 .npy", usage, run};
