/* SPDX-License-Identifier: MIT */
#pragma once

/* The dependency graph of a notebook's cells, from their reads and writes. */

#include <cjson/cJSON.h>

/* cells: the notebook's cells in position order, each an object with "id" (string), "reads" and
 * "writes" (arrays of strings). On success *ret is a new object:
 *   "edges":  [{"from": A, "to": B, "vars": [v, ...]}, ...]  B reads v, which A writes, A != B;
 *             ordered by A's position, then B's; vars sorted by first appearance in B's reads
 *   "order":  [id, ...] every cell not on a cycle, topologically sorted, ties by position
 *   "cycles": [[id, ...], ...] strongly connected groups of two or more cells, each in position
 *             order, groups ordered by their first cell's position
 * Returns 0, -EINVAL if cells is not an array of such objects, -E2BIG if the cells share more
 * than GRAPH_MAX_LINKS (writer, reader, variable) links, -ENOMEM. */
/* Set by cost: at this many links the daemon takes about 20 ms to compute and print the graph (its
 * loop serves nobody else meanwhile), and the reply is about 1 MB. */
#define GRAPH_MAX_LINKS (20u * 1000u)

int graph_compute(const cJSON *cells, cJSON **ret);
