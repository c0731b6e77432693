/* Tests for src/io/npy.c: round trips, byte-identical headers to numpy's, parsing of
 * fixtures written by numpy (tests/reference/npy_fixtures.py) and rejection of bad files. */
#include "test.h"
#include "vlmn/npy.h"
#include "core/alloc.h"

#include <stdint.h>
#include <sys/stat.h>

static long read_file(const char *path, unsigned char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return (long)n;
}

static void write_file(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(buf, 1, n, f);
    fclose(f);
}

TEST(roundtrip_f32_and_u8_all_ranks)
{
    for (int ndim = 0; ndim <= VLMN_NPY_MAX_DIMS; ndim++) {
        int64_t shape[VLMN_NPY_MAX_DIMS];
        size_t count = 1;
        for (int i = 0; i < ndim; i++) {
            shape[i] = 1 + (i * 3 + ndim) % 3;
            count *= (size_t)shape[i];
        }
        float *f = malloc(count * sizeof *f);
        uint8_t *u = malloc(count);
        for (size_t i = 0; i < count; i++) {
            f[i] = (float)i * 0.25f - 7.0f;
            u[i] = (uint8_t)(i * 13);
        }
        const char *pf = test_path(test_tmp_dir(), "rt_f32.npy");
        const char *pu = test_path(test_tmp_dir(), "rt_u8.npy");
        CHECK_EQ_INT(vlmn_npy_write_f32(pf, ndim, shape, f), VLMN_OK);
        CHECK_EQ_INT(vlmn_npy_write(pu, VLMN_NPY_U8, ndim, shape, u), VLMN_OK);
        struct stat sb;
        CHECK(stat(pf, &sb) == 0 && (sb.st_size - (off_t)(count * 4)) % 64 == 0);
        vlmn_npy *a = NULL, *b = NULL;
        CHECK_EQ_INT(vlmn_npy_read(pf, &a), VLMN_OK);
        CHECK_EQ_INT(vlmn_npy_read(pu, &b), VLMN_OK);
        if (a && b) {
            CHECK_EQ_INT(a->dtype, VLMN_NPY_F32);
            CHECK_EQ_INT(b->dtype, VLMN_NPY_U8);
            CHECK_EQ_INT(a->ndim, ndim);
            CHECK_EQ_INT(a->count, count);
            for (int i = 0; i < ndim; i++) CHECK_EQ_INT(a->shape[i], shape[i]);
            CHECK(!memcmp(a->data, f, count * 4));
            CHECK(!memcmp(b->data, u, count));
        }
        vlmn_npy_free(a);
        vlmn_npy_free(b);
        free(f);
        free(u);
    }
}

TEST(header_identical_to_numpy)
{
    unsigned char want[512], got[512];
    long n = read_file(test_path(test_data_dir(), "io/np_f4_3d.npy"), want, sizeof want);
    CHECK(n == 128 + 30 * 4);
    int64_t shape[3] = {2, 3, 5};
    size_t h = vlmn_npy_header((char *)got, sizeof got, VLMN_NPY_F32, 3, shape);
    CHECK_EQ_INT(h, 128);
    CHECK(n >= 128 && !memcmp(want, got, 128));
    /* 1-d shapes need the trailing comma: "(5,)". */
    n = read_file(test_path(test_data_dir(), "io/np_i8_1d.npy"), want, sizeof want);
    int64_t s1 = 5;
    h = vlmn_npy_header((char *)got, sizeof got, VLMN_NPY_I64, 1, &s1);
    CHECK(h == 128 && n > 128 && !memcmp(want, got, 128));
    n = read_file(test_path(test_data_dir(), "io/np_u1_2d.npy"), want, sizeof want);
    int64_t s2[2] = {4, 7};
    h = vlmn_npy_header((char *)got, sizeof got, VLMN_NPY_U8, 2, s2);
    CHECK(h == 128 && n > 128 && !memcmp(want, got, 128));
}

TEST(reads_numpy_fixtures)
{
    vlmn_npy *a = NULL;
    CHECK_EQ_INT(vlmn_npy_read(test_path(test_data_dir(), "io/np_f4_3d.npy"), &a), VLMN_OK);
    if (a) {
        CHECK(a->dtype == VLMN_NPY_F32 && a->ndim == 3 && a->shape[0] == 2 && a->shape[1] == 3 &&
              a->shape[2] == 5 && a->count == 30);
        for (int i = 0; i < 30; i++) CHECK(((float *)a->data)[i] == (float)i * 0.5f - 3.0f);
    }
    vlmn_npy_free(a);
    CHECK_EQ_INT(vlmn_npy_read(test_path(test_data_dir(), "io/np_u1_2d.npy"), &a), VLMN_OK);
    if (a) {
        CHECK(a->dtype == VLMN_NPY_U8 && a->ndim == 2 && a->shape[0] == 4 && a->shape[1] == 7);
        for (int i = 0; i < 28; i++) CHECK(((uint8_t *)a->data)[i] == (uint8_t)(i * 37 % 256));
    }
    vlmn_npy_free(a);
    CHECK_EQ_INT(vlmn_npy_read(test_path(test_data_dir(), "io/np_i8_1d.npy"), &a), VLMN_OK);
    if (a) {
        CHECK(a->dtype == VLMN_NPY_I64 && a->ndim == 1 && a->shape[0] == 5);
        for (int i = 0; i < 5; i++) CHECK(((int64_t *)a->data)[i] == -1000000000000LL * i);
    }
    vlmn_npy_free(a);
    CHECK_EQ_INT(vlmn_npy_read(test_path(test_data_dir(), "io/np_f4_0d.npy"), &a), VLMN_OK);
    if (a) CHECK(a->ndim == 0 && a->count == 1 && ((float *)a->data)[0] == 2.5f);
    vlmn_npy_free(a);
    CHECK_EQ_INT(vlmn_npy_read(test_path(test_data_dir(), "io/np_f4_empty.npy"), &a), VLMN_OK);
    if (a) CHECK(a->ndim == 2 && a->count == 0 && a->shape[0] == 0 && a->shape[1] == 3);
    vlmn_npy_free(a);
    CHECK_EQ_INT(vlmn_npy_read(test_path(test_data_dir(), "io/np_f8_8d.npy"), &a), VLMN_OK);
    if (a) {
        CHECK(a->dtype == VLMN_NPY_F64 && a->ndim == 8 && a->count == 256);
        for (int i = 0; i < 256; i++) CHECK(((double *)a->data)[i] == (double)i);
    }
    vlmn_npy_free(a);
}

TEST(rejects_unsupported_and_corrupt)
{
    vlmn_npy *a = NULL;
    CHECK_EQ_INT(vlmn_npy_read(test_path(test_data_dir(), "io/np_f4_fortran.npy"), &a),
                 VLMN_E_UNSUPPORTED);
    CHECK(strstr(vlmn_errmsg(), "Fortran") != NULL);
    CHECK_EQ_INT(vlmn_npy_read(test_path(test_data_dir(), "io/np_f4_big_endian.npy"), &a),
                 VLMN_E_UNSUPPORTED);
    CHECK(strstr(vlmn_errmsg(), ">f4") != NULL);
    CHECK_EQ_INT(vlmn_npy_read(test_path(test_tmp_dir(), "no_such_file.npy"), &a), VLMN_E_IO);
    CHECK(a == NULL);

    unsigned char good[512];
    long n = read_file(test_path(test_data_dir(), "io/np_f4_3d.npy"), good, sizeof good);
    CHECK(n == 248);
    unsigned char bad[512];
    /* Each mutation must be rejected with VLMN_E_FORMAT or another error, never crash. */
    struct { int off; unsigned char val; } muts[] = {
        {0, 'x'},        /* magic */
        {8, 0xff},       /* header length past end / misaligned */
        {10, '['},       /* not a dict */
        {12, 'x'},       /* unknown key */
        {0x3d, '7'},     /* shape (7,3,5): data size mismatch */
        {0x3c, 'x'},     /* shape not a tuple */
        {0x44, 'x'},     /* bad shape entry */
        {127, ' '},      /* no terminating newline */
        {0x48, 'x'},     /* junk after the dict */
    };
    for (size_t i = 0; i < VLMN_ARRAY_LEN(muts); i++) {
        memcpy(bad, good, (size_t)n);
        bad[muts[i].off] = muts[i].val;
        vlmn_status st = vlmn_npy_parse(bad, (size_t)n, "mut.npy", &a);
        CHECK_MSG(st != VLMN_OK && a == NULL, "mutation %zu accepted", i);
        CHECK(strncmp(vlmn_errmsg(), "mut.npy: ", 9) == 0);
    }
    /* Truncated data and truncated header. */
    CHECK(vlmn_npy_parse(good, (size_t)n - 1, "t.npy", &a) == VLMN_E_FORMAT);
    CHECK(vlmn_npy_parse(good, 100, "t.npy", &a) == VLMN_E_FORMAT);
    CHECK(vlmn_npy_parse(good, 5, "t.npy", &a) == VLMN_E_FORMAT);
    CHECK(vlmn_npy_parse(good, 0, "t.npy", &a) == VLMN_E_FORMAT);
    /* Unsupported version. */
    memcpy(bad, good, (size_t)n);
    bad[6] = 9;
    CHECK(vlmn_npy_parse(bad, (size_t)n, "v.npy", &a) == VLMN_E_UNSUPPORTED);
    /* A huge shape must be refused before allocating. */
    const char *p = test_path(test_tmp_dir(), "huge.npy");
    char hdr[256];
    int64_t hs[3] = {1000000, 1000000, 1000000};
    size_t h = vlmn_npy_header(hdr, sizeof hdr, VLMN_NPY_F32, 3, hs);
    write_file(p, hdr, h);
    CHECK_EQ_INT(vlmn_npy_read(p, &a), VLMN_E_RANGE);
    int64_t ho[2] = {(int64_t)1 << 40, (int64_t)1 << 40};
    h = vlmn_npy_header(hdr, sizeof hdr, VLMN_NPY_F32, 2, ho);
    write_file(p, hdr, h);
    CHECK_EQ_INT(vlmn_npy_read(p, &a), VLMN_E_RANGE);
}

TEST(write_errors_and_atomicity)
{
    int64_t shape[1] = {4};
    float v[4] = {1, 2, 3, 4};
    CHECK_EQ_INT(vlmn_npy_write_f32("/nonexistent-dir/x.npy", 1, shape, v), VLMN_E_IO);
    CHECK(strstr(vlmn_errmsg(), "/nonexistent-dir/x.npy: ") == vlmn_errmsg());
    int64_t neg[1] = {-1};
    CHECK_EQ_INT(vlmn_npy_write_f32(test_path(test_tmp_dir(), "neg.npy"), 1, neg, v), VLMN_E_ARG);
    CHECK_EQ_INT(vlmn_npy_write_f32(test_path(test_tmp_dir(), "n9.npy"), 9, shape, v), VLMN_E_ARG);
    /* Overwrite an existing file: the old content is replaced as a whole. */
    const char *p = test_path(test_tmp_dir(), "over.npy");
    write_file(p, "old junk", 8);
    CHECK_EQ_INT(vlmn_npy_write_f32(p, 1, shape, v), VLMN_OK);
    vlmn_npy *a = NULL;
    CHECK_EQ_INT(vlmn_npy_read(p, &a), VLMN_OK);
    CHECK(a && a->count == 4 && ((float *)a->data)[3] == 4.0f);
    vlmn_npy_free(a);
    /* Allocation failure is reported, not crashed on. */
    vlmn_alloc_fail_after(1);
    CHECK_EQ_INT(vlmn_npy_write_f32(p, 1, shape, v), VLMN_E_NOMEM);
    vlmn_alloc_fail_after(0);
}

TEST_MAIN()
