/* Image decoding: JPEG (libjpeg-turbo) and PNG (libpng) into 8-bit RGB, reproducing
 * PIL 9.4's Image.open(f).convert('RGB') pixel for pixel (see docs/image.md for each
 * colour type). Input is untrusted: library errors longjmp back to a clean status,
 * sizes are bounded before allocation. First step of the flow: file -> RGB pixels. */
#include "vlmn/image.h"
#include "core/alloc.h"
#include "core/file.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

vlmn_status vlmn_img_create(int w, int h, vlmn_image **out)
{
    *out = NULL;
    if (w < 1 || h < 1 || (uint64_t)w * (uint64_t)h > VLMN_IMG_MAX_PIXELS)
        return vlmn_error(VLMN_E_RANGE, "image size %dx%d out of range", w, h);
    vlmn_image *im = vlmn_calloc(1, sizeof *im);
    if (!im) return vlmn_error(VLMN_E_NOMEM, "out of memory");
    im->rgb = vlmn_calloc((size_t)w * (size_t)h, 3);
    if (!im->rgb) {
        vlmn_free(im);
        return vlmn_error(VLMN_E_NOMEM, "out of memory for a %dx%d image", w, h);
    }
    im->w = w;
    im->h = h;
    *out = im;
    return VLMN_OK;
}

void vlmn_img_free(vlmn_image *im)
{
    if (!im) return;
    vlmn_free(im->rgb);
    vlmn_free(im);
}

/* Shared size check, before any pixel buffer exists. */
static vlmn_status check_size(const char *name, const char *fmt, uint64_t w, uint64_t h,
                              uint64_t max_pixels)
{
    if (w == 0 || h == 0)
        return vlmn_error(VLMN_E_FORMAT, "%s: %s image has zero size (%llux%llu)", name, fmt,
                          (unsigned long long)w, (unsigned long long)h);
    if (w > INT32_MAX || h > INT32_MAX || w * h > max_pixels)
        return vlmn_error(VLMN_E_RANGE, "%s: %s image %llux%llu exceeds the limit of %llu pixels",
                          name, fmt, (unsigned long long)w, (unsigned long long)h,
                          (unsigned long long)max_pixels);
    return VLMN_OK;
}

/* ---- JPEG ----------------------------------------------------------------------- */

struct jpeg_ctx {
    struct jpeg_error_mgr pub;
    bool strict;
    struct jpeg_progress_mgr progress;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX + 64];
};

static void jpeg_on_error(j_common_ptr c)
{
    struct jpeg_ctx *x = (struct jpeg_ctx *)c->err;
    c->err->format_message(c, x->msg);
    longjmp(x->jb, 1);
}

/* Warnings (msg_level -1) are corrupt-data notices. PIL silences all of them and
 * keeps decoding, so do we (unless strict), except running out of data: libjpeg would
 * invent an EOI and grey pixels, while PIL raises "image file is truncated". */
static void jpeg_on_message(j_common_ptr c, int level)
{
    if (level != -1) return;
    struct jpeg_ctx *x = (struct jpeg_ctx *)c->err;
    if (c->err->msg_code == JWRN_JPEG_EOF) {
        snprintf(x->msg, sizeof x->msg, "truncated JPEG data");
        longjmp(x->jb, 1);
    }
    if (x->strict) {
        char m[JMSG_LENGTH_MAX];
        c->err->format_message(c, m);
        snprintf(x->msg, sizeof x->msg, "corrupt data: %s", m);
        longjmp(x->jb, 1);
    }
}

static void jpeg_on_progress(j_common_ptr c)
{
    j_decompress_ptr d = (j_decompress_ptr)c;
    if (d->input_scan_number > VLMN_IMG_MAX_JPEG_SCANS) {
        struct jpeg_ctx *x = (struct jpeg_ctx *)c->err;
        snprintf(x->msg, sizeof x->msg, "more than %d progressive scans",
                 VLMN_IMG_MAX_JPEG_SCANS);
        longjmp(x->jb, 1);
    }
}

/* PIL's CMYK -> RGB (Convert.c cmyk2rgb): nk = 255 - K; X = nk - nk * C / 255 with
 * its rounding division MULDIV255; result clipped. */
static inline uint8_t muldiv255(unsigned a, unsigned b)
{
    unsigned t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

static vlmn_status decode_jpeg(const unsigned char *buf, size_t len, const char *name,
                               uint64_t max_pixels, bool strict, vlmn_image **out)
{
    struct jpeg_decompress_struct cinfo;
    struct jpeg_ctx ctx;
    vlmn_image *volatile im = NULL;
    JSAMPLE *volatile row = NULL;
    vlmn_status st;

    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&ctx.pub);
    ctx.pub.error_exit = jpeg_on_error;
    ctx.pub.emit_message = jpeg_on_message;
    ctx.msg[0] = 0;
    ctx.strict = strict;
    if (setjmp(ctx.jb)) {
        st = vlmn_error(VLMN_E_FORMAT, "%s: JPEG: %s", name, ctx.msg);
        goto fail;
    }
    jpeg_create_decompress(&cinfo);
    ctx.progress.progress_monitor = jpeg_on_progress;
    cinfo.progress = &ctx.progress;
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    if (jpeg_read_header(&cinfo, TRUE) != JPEG_HEADER_OK) {
        st = vlmn_error(VLMN_E_FORMAT, "%s: JPEG: no image (tables only)", name);
        goto fail;
    }
    if ((st = check_size(name, "JPEG", cinfo.image_width, cinfo.image_height, max_pixels)))
        goto fail;
    /* PIL picks the mode from the component count (JpegImagePlugin SOF): 1 -> "L",
     * 3 -> "RGB", 4 -> "CMYK" decoded with rawmode "CMYK;I" (always inverted, the
     * Adobe convention). libjpeg does YCbCr/YCCK -> RGB/CMYK itself. Defaults kept as
     * PIL keeps them outside draft mode: JDCT_ISLOW, fancy upsampling on. */
    int ncomp = cinfo.num_components;
    if (ncomp == 1) cinfo.out_color_space = JCS_GRAYSCALE;
    else if (ncomp == 3) cinfo.out_color_space = JCS_RGB;
    else if (ncomp == 4) cinfo.out_color_space = JCS_CMYK;
    else {
        st = vlmn_error(VLMN_E_UNSUPPORTED, "%s: JPEG with %d components not supported", name,
                        ncomp);
        goto fail;
    }
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_width != cinfo.image_width || cinfo.output_height != cinfo.image_height ||
        cinfo.output_components != ncomp) {
        st = vlmn_error(VLMN_E_INTERNAL, "%s: JPEG: unexpected output geometry", name);
        goto fail;
    }
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height;
    vlmn_image *img;
    if ((st = vlmn_img_create(w, h, &img))) {
        vlmn_error_prefix(st, "%s", name);
        goto fail;
    }
    im = img;
    row = vlmn_malloc((size_t)w * (size_t)ncomp);
    if (!row) {
        st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        int y = (int)cinfo.output_scanline;
        JSAMPROW rp = row;
        if (jpeg_read_scanlines(&cinfo, &rp, 1) != 1) {
            st = vlmn_error(VLMN_E_FORMAT, "%s: JPEG: truncated JPEG data", name);
            goto fail;
        }
        uint8_t *o = im->rgb + (size_t)y * (size_t)w * 3;
        const JSAMPLE *r = row;
        if (ncomp == 1) {
            for (int x = 0; x < w; x++) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = r[x];
        } else if (ncomp == 3) {
            memcpy(o, r, (size_t)w * 3);
        } else {
            for (int x = 0; x < w; x++) {
                unsigned c = 255u - r[4 * x], m = 255u - r[4 * x + 1];
                unsigned yy = 255u - r[4 * x + 2], k = 255u - r[4 * x + 3];
                int nk = 255 - (int)k;
                int v0 = nk - muldiv255(c, (unsigned)nk), v1 = nk - muldiv255(m, (unsigned)nk);
                int v2 = nk - muldiv255(yy, (unsigned)nk);
                o[3 * x] = (uint8_t)(v0 < 0 ? 0 : v0);
                o[3 * x + 1] = (uint8_t)(v1 < 0 ? 0 : v1);
                o[3 * x + 2] = (uint8_t)(v2 < 0 ? 0 : v2);
            }
        }
    }
    /* Reads up to EOI: a file cut after the last scan is still "truncated" for PIL. */
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    vlmn_free(row);
    *out = im;
    return VLMN_OK;
fail:
    jpeg_destroy_decompress(&cinfo);
    vlmn_free(row);
    vlmn_img_free(im);
    return st;
}

/* ---- PNG ------------------------------------------------------------------------ */

struct png_ctx {
    bool strict;
    const unsigned char *buf;
    size_t len, pos;
    jmp_buf jb;
    char msg[256];
};

static void png_on_error(png_structp png, png_const_charp msg)
{
    struct png_ctx *x = png_get_error_ptr(png);
    snprintf(x->msg, sizeof x->msg, "%s", msg);
    longjmp(x->jb, 1);
}

/* libpng warnings concern ancillary data PIL also ignores (or repairs); strict mode
 * turns them into errors. */
static void png_on_warning(png_structp png, png_const_charp msg)
{
    struct png_ctx *x = png_get_error_ptr(png);
    if (!x->strict) return;
    snprintf(x->msg, sizeof x->msg, "corrupt data: %s", msg);
    longjmp(x->jb, 1);
}

static void png_on_read(png_structp png, png_bytep dst, size_t n)
{
    struct png_ctx *x = png_get_io_ptr(png);
    if (n > x->len - x->pos) png_error(png, "truncated PNG data");
    memcpy(dst, x->buf + x->pos, n);
    x->pos += n;
}

static vlmn_status decode_png(const unsigned char *buf, size_t len, const char *name,
                              uint64_t max_pixels, bool strict, vlmn_image **out)
{
    struct png_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.buf = buf;
    ctx.len = len;
    ctx.strict = strict;
    png_structp png = NULL;
    png_infop info = NULL;
    vlmn_image *volatile im = NULL;
    png_bytep volatile raw = NULL;
    png_bytepp volatile rows = NULL;
    vlmn_status st;

    /* Size check straight from IHDR (always the first chunk) before libpng reads on:
     * png_read_info would otherwise parse up to the first IDAT first. */
    if (len >= 33 && !memcmp(buf + 12, "IHDR", 4)) {
        uint64_t w = (uint64_t)buf[16] << 24 | (uint64_t)buf[17] << 16 | buf[18] << 8 | buf[19];
        uint64_t h = (uint64_t)buf[20] << 24 | (uint64_t)buf[21] << 16 | buf[22] << 8 | buf[23];
        if ((st = check_size(name, "PNG", w, h, max_pixels))) return st;
    }
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
    if (!png) return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name);
    info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name);
    }
    if (setjmp(ctx.jb)) {
        st = vlmn_error(VLMN_E_FORMAT, "%s: PNG: %s", name, ctx.msg);
        goto fail;
    }
    /* libpng's own limits, as a second line behind check_size. */
    png_set_user_limits(png, 1u << 26, 1u << 26);
    png_set_chunk_malloc_max(png, VLMN_IMG_MAX_PNG_CHUNK);
    png_set_chunk_cache_max(png, 1000);
    png_set_read_fn(png, &ctx, png_on_read);
    png_read_info(png, info);

    png_uint_32 w32, h32;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w32, &h32, &depth, &ctype, &interlace, NULL, NULL);
    if ((st = check_size(name, "PNG", w32, h32, max_pixels))) goto fail;
    int w = (int)w32, h = (int)h32;

    /* Target layouts per colour type (PIL 9.4 PngImagePlugin _MODES + convert('RGB')):
     *  grey 1/2/4/8   "1"/"L": bits scaled to 8 (v * 255/(2^d-1)), replicated;
     *  grey 16        "I" (0..65535), I -> RGB clips to [0, 255] (so v >= 255 -> 255);
     *  RGB/RGBA/LA 16 "RGB;16B" etc.: the high byte of each sample;
     *  palette        "P": lookup in a 256-entry table that starts as a grey ramp
     *                 (ImagingPaletteNew) overwritten by PLTE; tRNS ignored;
     *  alpha          dropped without compositing. */
    png_color pal[256];
    if (ctype == PNG_COLOR_TYPE_PALETTE) {
        for (int i = 0; i < 256; i++) pal[i].red = pal[i].green = pal[i].blue = (png_byte)i;
        png_colorp plte = NULL;
        int np = 0;
        if (png_get_PLTE(png, info, &plte, &np) && plte)
            for (int i = 0; i < np && i < 256; i++) pal[i] = plte[i];
        if (depth < 8) png_set_packing(png);
    } else if (ctype == PNG_COLOR_TYPE_GRAY) {
        if (depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    } else if (depth == 16) {
        png_set_strip_16(png); /* drops the low byte, no rounding */
    }
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    int chans = png_get_channels(png, info);
    int odepth = png_get_bit_depth(png, info);
    size_t bps = odepth == 16 ? 2 : 1;
    if (odepth < 8 || rowbytes != (size_t)w * (size_t)chans * bps) {
        st = vlmn_error(VLMN_E_INTERNAL, "%s: PNG: unexpected row layout", name);
        goto fail;
    }
    vlmn_image *img;
    if ((st = vlmn_img_create(w, h, &img))) {
        vlmn_error_prefix(st, "%s", name);
        goto fail;
    }
    im = img;
    /* Interlaced images need all rows at once; others are converted row by row. */
    size_t nrows = passes > 1 ? (size_t)h : 1;
    uint64_t total;
    if (!vlmn_mul_ok(nrows, rowbytes, &total) || total > SIZE_MAX) {
        st = vlmn_error(VLMN_E_RANGE, "%s: PNG too large", name);
        goto fail;
    }
    raw = vlmn_malloc((size_t)total);
    rows = vlmn_malloc(nrows * sizeof(png_bytep));
    if (!raw || !rows) {
        st = vlmn_error(VLMN_E_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    for (size_t i = 0; i < nrows; i++) rows[i] = raw + i * rowbytes;
    if (passes > 1) png_read_image(png, rows);
    for (int y = 0; y < h; y++) {
        png_bytep r = passes > 1 ? rows[y] : raw;
        if (passes == 1) png_read_row(png, r, NULL);
        uint8_t *o = im->rgb + (size_t)y * (size_t)w * 3;
        switch (ctype) {
        case PNG_COLOR_TYPE_PALETTE:
            for (int x = 0; x < w; x++) {
                o[3 * x] = pal[r[x]].red;
                o[3 * x + 1] = pal[r[x]].green;
                o[3 * x + 2] = pal[r[x]].blue;
            }
            break;
        case PNG_COLOR_TYPE_GRAY:
            for (int x = 0; x < w; x++) {
                unsigned v = bps == 2 ? ((unsigned)r[2 * x] << 8 | r[2 * x + 1]) : r[x];
                o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = (uint8_t)(v > 255 ? 255 : v);
            }
            break;
        default: /* GRAY_ALPHA, RGB, RGB_ALPHA after strip_16 */
            for (int x = 0; x < w; x++) {
                const png_byte *p = r + (size_t)x * (size_t)chans;
                if (chans <= 2) {
                    o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = p[0];
                } else {
                    o[3 * x] = p[0];
                    o[3 * x + 1] = p[1];
                    o[3 * x + 2] = p[2];
                }
            }
            break;
        }
    }
    /* No png_read_end: like PIL, data after the last image row (IEND, trailing
     * chunks) is not required. */
    png_destroy_read_struct(&png, &info, NULL);
    vlmn_free(rows);
    vlmn_free(raw);
    *out = im;
    return VLMN_OK;
fail:
    png_destroy_read_struct(&png, &info, NULL);
    vlmn_free(rows);
    vlmn_free(raw);
    vlmn_img_free(im);
    return st;
}

/* ---- dispatch ------------------------------------------------------------------- */

vlmn_status vlmn_img_decode_memory_opts(const void *buf, size_t len, const char *name,
                                        const vlmn_img_decode_opts *opts, vlmn_image **out)
{
    *out = NULL;
    const unsigned char *b = buf;
    uint64_t max_pixels = opts && opts->max_pixels ? opts->max_pixels : VLMN_IMG_MAX_PIXELS;
    bool strict = opts && opts->strict;
    if (max_pixels > VLMN_IMG_MAX_PIXELS) max_pixels = VLMN_IMG_MAX_PIXELS;
    if (len == 0) return vlmn_error(VLMN_E_FORMAT, "%s: empty file", name);
    if (len >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        return decode_jpeg(b, len, name, max_pixels, strict, out);
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (len >= 8 && !memcmp(b, png_sig, 8)) return decode_png(b, len, name, max_pixels, strict, out);
    const char *what = "unknown";
    if (len >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6))) what = "GIF";
    else if (len >= 2 && !memcmp(b, "BM", 2)) what = "BMP";
    else if (len >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4)) what = "WebP";
    else if (len >= 4 && (!memcmp(b, "II*\0", 4) || !memcmp(b, "MM\0*", 4))) what = "TIFF";
    else if (len >= 12 && !memcmp(b + 4, "ftyp", 4)) what = "HEIF/AVIF";
    else if (len >= 2 && b[0] == 0xFF && b[1] == 0xD8) what = "truncated JPEG";
    return vlmn_error(VLMN_E_UNSUPPORTED,
                      "%s: unsupported image format (%s; only JPEG and PNG are read)", name, what);
}

vlmn_status vlmn_img_decode_memory_limit(const void *buf, size_t len, const char *name,
                                         uint64_t max_pixels, vlmn_image **out)
{
    vlmn_img_decode_opts o = {max_pixels ? max_pixels : 1, false};
    return vlmn_img_decode_memory_opts(buf, len, name, &o, out);
}

vlmn_status vlmn_img_decode_memory(const void *buf, size_t len, const char *name,
                                   vlmn_image **out)
{
    return vlmn_img_decode_memory_opts(buf, len, name, NULL, out);
}

vlmn_status vlmn_img_load(const char *path, vlmn_image **out)
{
    *out = NULL;
    unsigned char *buf;
    size_t len;
    vlmn_status st = vlmn_file_read(path, VLMN_IMG_MAX_FILE_BYTES, "image", &buf, &len);
    if (st) return st;
    st = vlmn_img_decode_memory(buf, len, path, out);
    vlmn_free(buf);
    return st;
}
