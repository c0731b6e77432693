/* Tests for src/store: SHA-256 against FIPS 180-4 vectors, array files round trip
 * and reject corrupt headers, and the run reader on a stored run. */
#include "test.h"
#include "vlmn/run.h"
#include "vlmn/record.h"
#include "vlmn/model.h"
#include "store/store.h"
#include "store/sha256.h"

#include <sys/stat.h>
#include <unistd.h>

static void hex_of(const char *msg, size_t n, char out[65])
{
    vlmn_sha256 c;
    uint8_t d[32];
    vlmn_sha256_init(&c);
    /* feed in odd pieces to exercise buffering */
    for (size_t i = 0; i < n;) {
        size_t k = (i % 7) + 1;
        if (k > n - i) k = n - i;
        vlmn_sha256_update(&c, msg + i, k);
        i += k;
    }
    vlmn_sha256_final(&c, d);
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

TEST(sha256_vectors)
{
    char h[65];
    hex_of("", 0, h);
    CHECK_EQ_STR(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", 3, h);
    CHECK_EQ_STR(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(m, strlen(m), h);
    CHECK_EQ_STR(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    hex_of(a, 1000000, h);
    CHECK_EQ_STR(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    const char *p = test_path(test_tmp_dir(), "sha_a.bin");
    FILE *f = fopen(p, "wb");
    fwrite(a, 1, 1000000, f);
    fclose(f);
    uint64_t size = 0;
    CHECK(vlmn_sha256_file(p, h, &size) == VLMN_OK);
    CHECK_EQ_INT(size, 1000000);
    CHECK_EQ_STR(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
    CHECK(vlmn_sha256_file("/nonexistent", h, &size) == VLMN_E_NOTFOUND);
}

static vlmn_rec *small_rec(void)
{
    vlmn_rec_params p = {2, 5, 3, 1};
    vlmn_rec *r;
    if (vlmn_rec_create(&p, &r)) return NULL;
    uint8_t lab[3] = {VLMN_MOD_IMAGE, VLMN_MOD_PROMPT, VLMN_MOD_TEXT};
    float acts[15];
    for (uint32_t s = 0; s < 4; s++) {
        for (int i = 0; i < 15; i++) acts[i] = (float)((i * 7 + (int)s * 3) % 11) - 2.5f;
        vlmn_rec_begin_sample(r, s, lab, 3, false);
        vlmn_rec_capture(r, 0, acts, 3, 5);
        vlmn_rec_capture(r, 1, acts, 3, 5);
        vlmn_rec_end_sample(r);
    }
    return r;
}

TEST(arrays_round_trip_and_reject_corruption)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/store_arrays", test_tmp_dir());
    mkdir(dir, 0755);
    vlmn_rec *r = small_rec(), *r2 = NULL;
    CHECK(r != NULL);
    if (!r) return;
    CHECK(vlmn_store_write_arrays(dir, r, true) == VLMN_OK);
    int L, F, N;
    CHECK(vlmn_store_read_shape(dir, &L, &F, &N) == VLMN_OK);
    CHECK(L == 2 && F == 5 && N == 3);
    vlmn_rec_params p = {2, 5, 3, 1};
    CHECK(vlmn_rec_create(&p, &r2) == VLMN_OK);
    CHECK(vlmn_store_read_arrays(dir, r2) == VLMN_OK);
    CHECK(memcmp(vlmn_rec_stats(r), vlmn_rec_stats(r2), 10 * sizeof(vlmn_neuron_stats)) == 0);
    CHECK(memcmp(vlmn_rec_top(r), vlmn_rec_top(r2), 30 * sizeof(vlmn_top_entry)) == 0);
    CHECK(memcmp(vlmn_rec_top_count(r), vlmn_rec_top_count(r2), 10 * 4) == 0);
    /* truncated top.bin */
    const char *tp = test_path(dir, "top.bin");
    CHECK(truncate(tp, 64 + 72 * 29) == 0);
    CHECK(vlmn_store_read_arrays(dir, r2) == VLMN_E_FORMAT);
    /* bad magic / version in stats.bin */
    CHECK(vlmn_store_write_arrays(dir, r, false) == VLMN_OK);
    FILE *f = fopen(test_path(dir, "stats.bin"), "r+b");
    fseek(f, 8, SEEK_SET);
    fputc(9, f);
    fclose(f);
    CHECK(vlmn_store_read_arrays(dir, r2) == VLMN_E_UNSUPPORTED);
    f = fopen(test_path(dir, "stats.bin"), "r+b");
    fputc('X', f);
    fclose(f);
    CHECK(vlmn_store_read_arrays(dir, r2) == VLMN_E_FORMAT);
    /* shape mismatch */
    CHECK(vlmn_store_write_arrays(dir, r, false) == VLMN_OK);
    vlmn_rec *r3;
    vlmn_rec_params p3 = {2, 5, 4, 1};
    CHECK(vlmn_rec_create(&p3, &r3) == VLMN_OK);
    CHECK(vlmn_store_read_arrays(dir, r3) == VLMN_E_MISMATCH);
    vlmn_rec_free(r3);
    vlmn_rec_free(r);
    vlmn_rec_free(r2);
}

TEST(run_reader)
{
    char dir[512], db[600];
    snprintf(dir, sizeof dir, "%s/store_run", test_tmp_dir());
    mkdir(dir, 0755);
    snprintf(db, sizeof db, "%s/run.sqlite", dir);
    unlink(db);
    vlmn_rec *r = small_rec();
    if (!r) return;
    sqlite3 *h;
    CHECK(vlmn_db_open(db, true, &h) == VLMN_OK);
    vlmn_store_sample s = {0, "s0", "a.jpg", true, NULL, 1, 1};
    for (int i = 0; i < 4; i++) {
        s.index = i;
        CHECK(vlmn_db_put_sample(h, &s) == VLMN_OK);
    }
    CHECK(vlmn_db_write_neurons(h, r) == VLMN_OK);
    CHECK(vlmn_db_write_top(h, r) == VLMN_OK);
    CHECK(vlmn_db_write_top(h, r) == VLMN_OK); /* replaces, no duplicates */
    {
        sqlite3_stmt *q;
        CHECK(sqlite3_prepare_v2(h, "SELECT count(*), sum(rank = 1) FROM top", -1, &q, NULL) == SQLITE_OK);
        CHECK(sqlite3_step(q) == SQLITE_ROW);
        uint32_t want = 0;
        for (int k = 0; k < 10; k++) want += vlmn_rec_top_count(r)[k];
        CHECK_EQ_INT(sqlite3_column_int64(q, 0), want);
        CHECK_EQ_INT(sqlite3_column_int64(q, 1), 10);
        sqlite3_finalize(q);
        CHECK(sqlite3_prepare_v2(h, "SELECT sample_index, max_act FROM top WHERE layer=1 AND neuron=3 AND rank=2", -1, &q,
                                 NULL) == SQLITE_OK);
        CHECK(sqlite3_step(q) == SQLITE_ROW);
        const vlmn_top_entry *e = vlmn_rec_top(r) + (5 + 3) * 3 + 1;
        CHECK_EQ_INT(sqlite3_column_int64(q, 0), e->sample);
        CHECK(sqlite3_column_double(q, 1) == e->max_act);
        sqlite3_finalize(q);
    }
    CHECK(vlmn_db_set_meta(h, "status", "%s", "running") == VLMN_OK);
    CHECK(vlmn_store_write_arrays(dir, r, true) == VLMN_OK);
    vlmn_db_close(h);
    vlmn_run *run = NULL;
    CHECK(vlmn_run_open(dir, &run) == VLMN_E_ARG); /* not complete */
    CHECK(vlmn_db_open(db, false, &h) == VLMN_OK);
    CHECK(vlmn_db_set_meta(h, "status", "%s", "complete") == VLMN_OK);
    char buf[32];
    CHECK(vlmn_db_get_meta(h, "status", buf, sizeof buf) == VLMN_OK);
    CHECK_EQ_STR(buf, "complete");
    CHECK(vlmn_db_get_meta(h, "nope", buf, sizeof buf) == VLMN_E_NOTFOUND);
    vlmn_db_close(h);
    CHECK(vlmn_run_open(dir, &run) == VLMN_OK);
    if (run) {
        CHECK_EQ_INT(vlmn_run_n_layers(run), 2);
        CHECK_EQ_INT(vlmn_run_n_ff(run), 5);
        CHECK_EQ_INT(vlmn_run_top_n(run), 3);
        CHECK_EQ_INT(vlmn_run_n_samples(run), 4);
        int n;
        const vlmn_top_entry *t = vlmn_run_top(run, 1, 4, &n);
        CHECK_EQ_INT(n, 3);
        CHECK(memcmp(t, vlmn_rec_top(r) + (5 + 4) * 3, 3 * sizeof *t) == 0);
        CHECK(vlmn_run_stats(run, 0, 2)->count == vlmn_rec_stats(r)[2].count);
        CHECK(vlmn_run_stats(run, 2, 0) == NULL);
        CHECK(vlmn_run_top(run, 0, 5, &n) == NULL && n == 0);
        CHECK(vlmn_run_db(run) != NULL);
        vlmn_run_close(run);
    }
    CHECK(vlmn_run_open("/nonexistent", &run) == VLMN_E_NOTFOUND);
    vlmn_rec_free(r);
}

TEST_MAIN()
