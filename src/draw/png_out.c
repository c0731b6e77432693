/* Output of pictures: PNG encoding into memory (libpng), data: URLs, atomic file
 * writes (include/vlmn/draw.h). */
#include "vlmn/draw.h"
#include "core/alloc.h"
#include "core/buf.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct png_out {
    vlmn_buf b;
    char msg[200];
} png_out;

static void on_write(png_structp png, png_bytep data, size_t n)
{
    png_out *o = png_get_io_ptr(png);
    vlmn_buf_add(&o->b, data, n);
    if (o->b.oom) png_error(png, "out of memory");
}

static void on_flush(png_structp png) { (void)png; }

static void on_error(png_structp png, png_const_charp msg)
{
    png_out *o = png_get_error_ptr(png);
    snprintf(o->msg, sizeof o->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

vlmn_status vlmn_draw_png(const vlmn_image *im, uint8_t **pngbuf, size_t *len)
{
    *pngbuf = NULL;
    *len = 0;
    if (!im || im->w < 1 || im->h < 1 || !im->rgb) return vlmn_error(VLMN_E_ARG, "png: empty image");
    png_out o;
    memset(&o, 0, sizeof o);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &o, on_error, on_warning);
    if (!png) return vlmn_error(VLMN_E_NOMEM, "png: out of memory");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return vlmn_error(VLMN_E_NOMEM, "png: out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        vlmn_free(o.b.p);
        return vlmn_error(o.b.oom ? VLMN_E_NOMEM : VLMN_E_INTERNAL, "png: %s", o.msg);
    }
    png_set_write_fn(png, &o, on_write, on_flush);
    png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < im->h; y++) png_write_row(png, im->rgb + (size_t)y * (size_t)im->w * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    *pngbuf = (uint8_t *)o.b.p;
    *len = o.b.n;
    return VLMN_OK;
}

vlmn_status vlmn_draw_data_url(const uint8_t *data, size_t len, char **out)
{
    static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char PRE[] = "data:image/png;base64,";
    *out = NULL;
    if (len > ((size_t)1 << 40)) return vlmn_error(VLMN_E_RANGE, "data url: too large");
    size_t n = sizeof PRE - 1 + (len + 2) / 3 * 4;
    char *s = vlmn_malloc(n + 1), *p = s;
    if (!s) return vlmn_error(VLMN_E_NOMEM, "out of memory");
    memcpy(p, PRE, sizeof PRE - 1);
    p += sizeof PRE - 1;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len) v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < len) v |= data[i + 2];
        *p++ = B64[v >> 18 & 63];
        *p++ = B64[v >> 12 & 63];
        *p++ = i + 1 < len ? B64[v >> 6 & 63] : '=';
        *p++ = i + 2 < len ? B64[v & 63] : '=';
    }
    *p = 0;
    *out = s;
    return VLMN_OK;
}

vlmn_status vlmn_draw_save(const char *path, const void *data, size_t len)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return vlmn_error(VLMN_E_RANGE, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return vlmn_error(VLMN_E_IO, "%s: %s", tmp, strerror(errno));
    bool ok = fwrite(data, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int err = errno;
    if (fclose(f)) ok = false;
    if (!ok) {
        unlink(tmp);
        return vlmn_error(VLMN_E_IO, "%s: write failed: %s", tmp, strerror(err));
    }
    if (rename(tmp, path)) {
        err = errno;
        unlink(tmp);
        return vlmn_error(VLMN_E_IO, "%s: rename: %s", path, strerror(err));
    }
    return VLMN_OK;
}
