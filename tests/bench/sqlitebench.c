/* SPDX-License-Identifier: MIT */

/* sqlitebench: the raw SQLite anchor of notebookd's benchmark (tests/bench/bench.py, P2).
 *
 *   sqlitebench --db PATH [--rows-per-commit N] [--seconds S] [--warmup S] [--cells N]
 *               [--synchronous full|normal]
 *
 * Opens PATH with the daemon's settings (store_open() in daemon/store.c: WAL, synchronous=FULL
 * unless told otherwise, foreign_keys=ON, the same busy timeout), creates a table shaped like the
 * daemon's cells table (WITHOUT ROWID, keyed by notebook and cell id) holding --cells rows, then
 * for S seconds after a warm-up runs transactions of N UPDATEs each, every one setting a cell's
 * code to a short new string, the rows taken in turn. One thread, one connection, prepared
 * statements: what the daemon's store could do at best for the same rows and commits, without
 * JSON, sockets or the notebook's revision.
 *
 * Prints one line of key=value pairs:
 *   rows=N commits=C seconds=S rate=R commit_p50_ms=X commit_p99_ms=Y
 * rate is rows per second. Exit status 0, 1 on an SQLite error, 2 on a bad command line. */

#include <getopt.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ROWS_PER_COMMIT 100000

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int exec(sqlite3 *db, const char *sql)
{
        char *err = NULL;

        if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
                fprintf(stderr, "sqlitebench: %s: %s\n", sql, err ? err : sqlite3_errmsg(db));
                sqlite3_free(err);
                return -1;
        }
        return 0;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

static void usage(FILE *f)
{
        fputs("Usage: sqlitebench --db PATH [--rows-per-commit N] [--seconds S] [--warmup S] [--cells N]\n"
              "                   [--synchronous full|normal]\n",
              f);
}

/* One transaction of n updates; row counts across calls so that the rows are taken in turn. */
static int run_commit(sqlite3 *db, sqlite3_stmt *begin, sqlite3_stmt *update, sqlite3_stmt *commit, long n,
                      long cells, uint64_t *row)
{
        char code[64], id[32];

        if (sqlite3_step(begin) != SQLITE_DONE)
                return -1;
        sqlite3_reset(begin);
        for (long i = 0; i < n; i++, (*row)++) {
                snprintf(code, sizeof(code), "x = %" PRIu64 " * 2", *row);
                snprintf(id, sizeof(id), "cell-%ld", (long)(*row % (uint64_t)cells));
                sqlite3_bind_text(update, 1, code, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(update, 2, id, -1, SQLITE_TRANSIENT);
                if (sqlite3_step(update) != SQLITE_DONE || sqlite3_changes(db) != 1)
                        return -1;
                sqlite3_reset(update);
        }
        if (sqlite3_step(commit) != SQLITE_DONE)
                return -1;
        sqlite3_reset(commit);
        return 0;
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {
                { "db", required_argument, NULL, 'd' },
                { "rows-per-commit", required_argument, NULL, 'n' },
                { "seconds", required_argument, NULL, 't' },
                { "warmup", required_argument, NULL, 'w' },
                { "cells", required_argument, NULL, 'c' },
                { "synchronous", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *path = NULL, *sync = "FULL";
        long per_commit = 16, cells = 1000;
        double seconds = 5, warmup = 1;
        sqlite3 *db = NULL;
        sqlite3_stmt *begin = NULL, *update = NULL, *commit = NULL, *insert = NULL;
        uint64_t row = 0, t, t_measure, t_end, t_first = 0, t_last = 0, rows = 0, *lat = NULL;
        size_t n_lat = 0, alloc_lat = 0;
        int opt, status = 1;

        while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                switch (opt) {
                case 'd':
                        path = optarg;
                        break;
                case 'n':
                        per_commit = strtol(optarg, NULL, 10);
                        break;
                case 't':
                        seconds = strtod(optarg, NULL);
                        break;
                case 'w':
                        warmup = strtod(optarg, NULL);
                        break;
                case 'c':
                        cells = strtol(optarg, NULL, 10);
                        break;
                case 's':
                        if (strcmp(optarg, "full") == 0)
                                sync = "FULL";
                        else if (strcmp(optarg, "normal") == 0)
                                sync = "NORMAL";
                        else {
                                usage(stderr);
                                return 2;
                        }
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (!path || per_commit < 1 || per_commit > MAX_ROWS_PER_COMMIT || cells < 1 || seconds <= 0 ||
            warmup < 0) {
                usage(stderr);
                return 2;
        }

        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK) {
                fprintf(stderr, "sqlitebench: cannot open %s: %s\n", path,
                        db ? sqlite3_errmsg(db) : "out of memory");
                goto out;
        }
        sqlite3_busy_timeout(db, 50);
        {
                char pragma[64];

                snprintf(pragma, sizeof(pragma), "PRAGMA synchronous = %s", sync);
                if (exec(db, "PRAGMA journal_mode = WAL") < 0 || exec(db, pragma) < 0 ||
                    exec(db, "PRAGMA foreign_keys = ON") < 0)
                        goto out;
        }
        /* The columns and key of the daemon's cells table (sql/0001_init.sql). */
        if (exec(db,
                 "CREATE TABLE IF NOT EXISTS cells (nb INTEGER NOT NULL, id TEXT NOT NULL, pos INTEGER NOT "
                 "NULL, "
                 "type TEXT NOT NULL, code TEXT NOT NULL DEFAULT '', status TEXT NOT NULL DEFAULT 'idle', "
                 "stdout TEXT NOT NULL DEFAULT '', outputs TEXT NOT NULL DEFAULT '[]', error TEXT, "
                 "reads TEXT NOT NULL DEFAULT '[]', writes TEXT NOT NULL DEFAULT '[]', "
                 "PRIMARY KEY (nb, id)) WITHOUT ROWID") < 0 ||
            exec(db, "CREATE INDEX IF NOT EXISTS cells_by_pos ON cells (nb, pos)") < 0 ||
            exec(db, "BEGIN") < 0)
                goto out;
        if (sqlite3_prepare_v2(
                    db,
                    "INSERT OR IGNORE INTO cells (nb, id, pos, type, code) VALUES (1, ?, ?, 'python', '')",
                    -1, &insert, NULL) != SQLITE_OK)
                goto sqlerr;
        for (long i = 0; i < cells; i++) {
                char id[32];

                snprintf(id, sizeof(id), "cell-%ld", i);
                sqlite3_bind_text(insert, 1, id, -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64(insert, 2, (sqlite3_int64)i * 1024);
                if (sqlite3_step(insert) != SQLITE_DONE)
                        goto sqlerr;
                sqlite3_reset(insert);
        }
        if (exec(db, "COMMIT") < 0)
                goto out;
        if (sqlite3_prepare_v2(db, "BEGIN", -1, &begin, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db, "UPDATE cells SET code = ? WHERE nb = 1 AND id = ?", -1, &update, NULL) !=
                    SQLITE_OK ||
            sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL) != SQLITE_OK)
                goto sqlerr;

        t = now_ns();
        t_measure = t + (uint64_t)(warmup * 1e9);
        t_end = t_measure + (uint64_t)(seconds * 1e9);
        while (t < t_end) {
                uint64_t t1;

                if (run_commit(db, begin, update, commit, per_commit, cells, &row) < 0)
                        goto sqlerr;
                t1 = now_ns();
                if (t >= t_measure) {
                        if (n_lat == alloc_lat) {
                                uint64_t *p =
                                        realloc(lat, (alloc_lat = alloc_lat * 2 + 4096) * sizeof(*lat));

                                if (!p)
                                        goto out;
                                lat = p;
                        }
                        if (n_lat == 0)
                                t_first = t;
                        lat[n_lat++] = t1 - t;
                        rows += (uint64_t)per_commit;
                        t_last = t1;
                }
                t = t1;
        }
        /* The window measured is what the commits took, not the nominal seconds: the last one
         * may end past t_end. */
        if (t_last > t_first)
                seconds = (double)(t_last - t_first) / 1e9;
        qsort(lat, n_lat, sizeof(*lat), cmp_u64);
        printf("rows=%" PRIu64 " commits=%zu seconds=%.3f rate=%.0f commit_p50_ms=%.3f commit_p99_ms=%.3f\n",
               rows, n_lat, seconds, (double)rows / seconds, n_lat ? lat[n_lat / 2] / 1e6 : 0.0,
               n_lat ? lat[(size_t)((double)n_lat * 0.99)] / 1e6 : 0.0);
        status = 0;
        goto out;
sqlerr:
        fprintf(stderr, "sqlitebench: %s\n", sqlite3_errmsg(db));
out:
        free(lat);
        sqlite3_finalize(insert);
        sqlite3_finalize(begin);
        sqlite3_finalize(update);
        sqlite3_finalize(commit);
        sqlite3_close(db);
        return status;
}
