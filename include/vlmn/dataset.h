/* Datasets of (image, question, answer) samples read as a stream: LLaVA conversation
 * JSON (a top-level array) and JSONL. Flow: [dataset] -> image/tokens -> model forward.
 * Memory stays bounded by the largest single sample, never by the file size. */
#ifndef VLMN_DATASET_H
#define VLMN_DATASET_H

#include "vlmn/vlmn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest accepted single sample (one JSON object / one JSONL line). */
#define VLMN_DS_MAX_SAMPLE_BYTES (64u << 20)

typedef enum vlmn_ds_format {
    VLMN_DS_AUTO = 0,   /* '[' first -> LLaVA JSON, '{' first -> JSONL */
    VLMN_DS_LLAVA = 1,  /* [{"id","image","conversations":[{"from","value"},...]}, ...] */
    VLMN_DS_JSONL = 2   /* {"id","image","question","answer"} per line */
} vlmn_ds_format;

/* One sample. Strings are owned by the dataset and valid until the next
 * vlmn_ds_next/vlmn_ds_close. `error` is non-NULL when the element was well-formed
 * JSON but not a usable sample (no image, no human/gpt turn...): the caller records
 * the sample as failed with that reason and goes on. */
typedef struct vlmn_sample {
    int64_t index;        /* position in the file, 0-based, over all elements */
    uint64_t offset;      /* byte offset of the element in the file */
    const char *id;       /* "id" as text ("" if absent; numbers are printed) */
    const char *image;    /* "image" relative to --images (NULL if absent) */
    const char *question; /* first human turn, "<image>" removed, whitespace-stripped */
    const char *answer;   /* first gpt turn after it, verbatim */
    const char *error;    /* NULL, or why this element is not a usable sample */
} vlmn_sample;

typedef struct vlmn_dataset vlmn_dataset;

vlmn_status vlmn_ds_open(const char *path, vlmn_ds_format fmt, vlmn_dataset **out);
void vlmn_ds_close(vlmn_dataset *ds);
vlmn_ds_format vlmn_ds_get_format(const vlmn_dataset *ds);

/* Next sample; *eof = true (and no sample) at the end. A syntax error in the file
 * is fatal: VLMN_E_FORMAT with "FILE: sample K (byte offset B): problem". */
vlmn_status vlmn_ds_next(vlmn_dataset *ds, vlmn_sample *s, bool *eof);
/* Skip the next element without building a sample (still checks its syntax
 * boundaries); *eof as above. Used to count samples and to resume. */
vlmn_status vlmn_ds_skip(vlmn_dataset *ds, bool *eof);
/* Number of elements in the file (one scan, constant memory). */
vlmn_status vlmn_ds_count(const char *path, vlmn_ds_format fmt, int64_t *n);

/* The LLaVA question rule (llava/train/train.py preprocess_multimodal): remove every
 * "<image>", then strip leading/trailing whitespace. Returns a new string
 * (vlmn_free) or NULL on allocation failure. */
char *vlmn_ds_clean_question(const char *value);

/* Same as vlmn_ds_open over bytes in memory (copied; `name` is used in messages).
 * For tests and the fuzz target. */
vlmn_status vlmn_ds_open_mem(const void *data, size_t n, const char *name,
                             vlmn_ds_format fmt, vlmn_dataset **out);

#ifdef __cplusplus
}
#endif
#endif
