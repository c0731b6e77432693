/* Fixture helper for tests/reference/preprocess_ref.py (not part of the build): writes
 * 4-component JPEGs PIL cannot write, from raw CMYK bytes on stdin:
 *   jpeg_cmyk_writer W H ycck|plain OUT.jpg
 * ycck: Adobe marker with transform 2 (YCCK); plain: CMYK without any Adobe marker.
 * The samples are stored as given (the Adobe "inverted" convention is the caller's). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

int main(int argc, char **argv)
{
    if (argc != 5) return 2;
    int w = atoi(argv[1]), h = atoi(argv[2]);
    unsigned char *px = malloc((size_t)w * h * 4);
    if (!px || fread(px, 4, (size_t)w * h, stdin) != (size_t)w * h) return 1;
    FILE *f = fopen(argv[4], "wb");
    if (!f) return 1;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = w;
    c.image_height = h;
    c.input_components = 4;
    c.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    if (!strcmp(argv[3], "ycck")) {
        jpeg_set_colorspace(&c, JCS_YCCK);
    } else {
        jpeg_set_colorspace(&c, JCS_CMYK);
        c.write_Adobe_marker = FALSE;
    }
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = px + (size_t)c.next_scanline * w * 4;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
    free(px);
    return 0;
}
