/* SPDX-License-Identifier: MIT */
#pragma once

/* notebookctl import and export: notebooks in and out of the daemon as files, in the web app's
 * own JSON file format (backend/storage.py's notebooks/{id}.json) or as Jupyter notebooks
 * (nbformat 4.5). doc/formats.md describes both mappings. */

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "nbclient.h"

typedef struct ImportArgs {
        NbClient *client; /* connected */
        const char *user; /* --user: files without a user_id go to this user; NULL: the daemon's
                           * default user for this peer */
        char **paths;     /* files and directories */
        int n_paths;
        bool replace;    /* a notebook that exists with other content is replaced */
        bool quiet;      /* no progress line */
        bool json;       /* the summary as a JSON document */
        unsigned window; /* requests in flight, 1..64 */
} ImportArgs;

/* Imports the files; returns a notebookctl exit code (ctl.h): EXIT_OK when every file was
 * imported or already there, IMPORT_EXIT_SKIPPED when one was skipped, EXIT_TRANSPORT when the
 * connection failed. */
#define IMPORT_EXIT_SKIPPED 1
int transfer_import(const ImportArgs *a);

/* Parses a file's text as import reads it (path: the file's name, which names an .ipynb without
 * notebookd metadata; user: as --user). Returns 0 with *ret the notebook as notebook.create's
 * params ({"user_id"?, "notebook_id", "name", "db_conn_string", "ttl"?, "cells"}, every cell with
 * every field) and *ret_text_cells (may be NULL) the markdown and raw cells kept as comments;
 * -EINVAL with *ret_reason (free() it) saying why the file is not a notebook; -ENOMEM. */
int transfer_parse(const char *text, size_t len, const char *path, const char *user, cJSON **ret,
                   unsigned *ret_text_cells, char **ret_reason);

typedef enum ExportFormat {
        EXPORT_JSON,
        EXPORT_IPYNB,
} ExportFormat;

/* The notebook (a notebook.get result's "notebook") as a file's text in the format; NULL on OOM. */
char *transfer_export_text(const cJSON *nb, ExportFormat format);

/* Exports every notebook of the user (NULL: the daemon's default) into the directory dir (made if
 * missing), one file per notebook named after its id with .json or .ipynb, the gets pipelined.
 * Prints a summary (json: a JSON document). Returns an exit code. */
int transfer_export_all(NbClient *client, const char *user, const char *dir, ExportFormat format, bool json);

/* Writes text to path atomically (a temporary file in the same directory, then rename()), or to
 * stdout when path is NULL or "-". Returns an exit code; reports failures on stderr. */
int transfer_write_file(const char *path, const char *text);
