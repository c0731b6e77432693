/* The explanation run tables (explanations, simulations, scores) in RUN/run.sqlite;
 * schema documented in docs/run-format.md. Flow: explain/simulate/score -> [this]. */
#include "vlmn/explain.h"
#include "explain/explain_int.h"
#include "store/store.h"

static const char XSCHEMA[] =
    "CREATE TABLE IF NOT EXISTS explanations ("
    "  layer INTEGER NOT NULL, neuron INTEGER NOT NULL, sampling TEXT NOT NULL, explainer TEXT NOT NULL,"
    "  images TEXT NOT NULL, kind TEXT NOT NULL, samples TEXT NOT NULL, max_act REAL NOT NULL, text TEXT,"
    "  status TEXT NOT NULL CHECK (status IN ('ok','failed')), error TEXT, prompt_hash TEXT NOT NULL,"
    "  settings TEXT NOT NULL, prompt_tokens INTEGER, completion_tokens INTEGER, attempts INTEGER, cached INTEGER,"
    "  created TEXT NOT NULL,"
    "  PRIMARY KEY (layer, neuron, sampling, explainer, images)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS simulations ("
    "  layer INTEGER NOT NULL, neuron INTEGER NOT NULL, sampling TEXT NOT NULL, explainer TEXT NOT NULL,"
    "  images TEXT NOT NULL, simulator TEXT NOT NULL, mode TEXT NOT NULL, modality TEXT NOT NULL,"
    "  sample_index INTEGER NOT NULL, rank INTEGER NOT NULL, n INTEGER NOT NULL, sim BLOB, real BLOB NOT NULL,"
    "  n_mismatch INTEGER NOT NULL, status TEXT NOT NULL CHECK (status IN ('ok','failed')), error TEXT,"
    "  prompt_hash TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, attempts INTEGER, cached INTEGER,"
    "  created TEXT NOT NULL,"
    "  PRIMARY KEY (layer, neuron, sampling, explainer, images, simulator, mode, modality, sample_index))"
    "  WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS scores ("
    "  layer INTEGER NOT NULL, neuron INTEGER NOT NULL, sampling TEXT NOT NULL, explainer TEXT NOT NULL,"
    "  images TEXT NOT NULL, simulator TEXT NOT NULL, scorer TEXT NOT NULL, kind TEXT NOT NULL, score REAL,"
    "  score_visual REAL, score_text REAL, n_visual INTEGER NOT NULL, n_text INTEGER NOT NULL,"
    "  n_mismatch INTEGER NOT NULL, note TEXT, created TEXT NOT NULL,"
    "  accuracy REAL, n_pos INTEGER, n_neg INTEGER, detail TEXT,"
    "  PRIMARY KEY (layer, neuron, sampling, explainer, images, simulator, scorer)) WITHOUT ROWID;";

/* Columns added with the detection and fuzzing scorers, for runs made before them. */
static const char SCORES_V2[] =
    "ALTER TABLE scores ADD COLUMN accuracy REAL; ALTER TABLE scores ADD COLUMN n_pos INTEGER;"
    "ALTER TABLE scores ADD COLUMN n_neg INTEGER; ALTER TABLE scores ADD COLUMN detail TEXT;";

vlmn_status vlmn_xdb_init(sqlite3 *db)
{
    char *msg = NULL;
    if (sqlite3_exec(db, XSCHEMA, NULL, NULL, &msg) != SQLITE_OK) {
        vlmn_status st = vlmn_error(VLMN_E_DB, "%s: explanation tables: %s", sqlite3_db_filename(db, "main"),
                                    msg ? msg : "error");
        sqlite3_free(msg);
        return st;
    }
    if (!vlmn_db_has_column(db, "scores", "accuracy") && sqlite3_exec(db, SCORES_V2, NULL, NULL, &msg) != SQLITE_OK) {
        vlmn_status st = vlmn_error(VLMN_E_DB, "%s: scores table upgrade: %s", sqlite3_db_filename(db, "main"),
                                    msg ? msg : "error");
        sqlite3_free(msg);
        return st;
    }
    return VLMN_OK;
}

void xdb_bind_key(sqlite3_stmt *s, int layer, int neuron, const char *sampling, const char *explainer,
                  const char *images)
{
    sqlite3_reset(s);
    sqlite3_bind_int(s, 1, layer);
    sqlite3_bind_int(s, 2, neuron);
    sqlite3_bind_text(s, 3, sampling, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, explainer, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, images, -1, SQLITE_STATIC);
}

vlmn_status xdb_explanations(sqlite3 *db, const char *explainer, const char *sampling, sqlite3_stmt **out)
{
    *out = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT layer, neuron, sampling, explainer, images, kind, text FROM explanations WHERE "
                           "status='ok' AND (?1 IS NULL OR explainer=?1) AND (?2 IS NULL OR sampling=?2) "
                           "ORDER BY layer, neuron, sampling, explainer, images",
                           -1, out, NULL) != SQLITE_OK)
        return vlmn_db_err(db, "explanations");
    if (explainer) sqlite3_bind_text(*out, 1, explainer, -1, SQLITE_TRANSIENT);
    if (sampling) sqlite3_bind_text(*out, 2, sampling, -1, SQLITE_TRANSIENT);
    return VLMN_OK;
}
