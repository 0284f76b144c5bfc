/* SPDX-License-Identifier: MIT */

/* The content every user is provisioned with. Changing the demo cells means bumping DEMO_VERSION
 * in demo.h, so that demo.reset and the stored demo_version tell old content from new. */

#include <errno.h>

#include "demo.h"
#include "util.h"

/* Room for the longest reads or writes list below, plus the NULL that ends it. */
#define DEMO_MAX_VARS 8

struct demo_cell {
        const char *id;
        const char *type;
        const char *code;
        /* What the cell reads from other cells (names used before the cell binds them, builtins
         * left out) and what it binds, imports included, each in order of first appearance. */
        const char *reads[DEMO_MAX_VARS];
        const char *writes[DEMO_MAX_VARS];
};

/* x and y feed the plot and the DataFrame; the DataFrame feeds the Plotly and Altair charts, so
 * the demo shows a graph with fan-out and fan-in rather than a plain chain. */
static const struct demo_cell demo_cells[] = {
        {
                .id = "demo-cell-1",
                .type = "python",
                .code = "x = 10",
                .reads = { NULL },
                .writes = { "x", NULL },
        },
        {
                .id = "demo-cell-2",
                .type = "python",
                .code = "y = x + 5",
                .reads = { "x", NULL },
                .writes = { "y", NULL },
        },
        {
                .id = "demo-cell-3",
                .type = "python",
                .code = "import matplotlib.pyplot as plt\n"
                        "import numpy as np\n"
                        "\n"
                        "t = np.linspace(0, x, 200)\n"
                        "fig, ax = plt.subplots(figsize=(8, 4))\n"
                        "ax.plot(t, y * np.sin(t), label=f\"{y} * sin(t)\")\n"
                        "ax.set_xlabel(\"t\")\n"
                        "ax.set_title(\"Matplotlib: a sine wave scaled by y\")\n"
                        "ax.legend()\n"
                        "plt.show()",
                .reads = { "x", "y", NULL },
                .writes = { "plt", "np", "t", "fig", "ax", NULL },
        },
        {
                .id = "demo-cell-4",
                .type = "python",
                .code = "import pandas as pd\n"
                        "\n"
                        "df = pd.DataFrame({\n"
                        "    \"step\": list(range(1, x + 1)),\n"
                        "    \"value\": [y * i for i in range(1, x + 1)],\n"
                        "})\n"
                        "df[\"squared\"] = df[\"value\"] ** 2\n"
                        "df",
                .reads = { "x", "y", NULL },
                .writes = { "pd", "df", NULL },
        },
        {
                .id = "demo-cell-5",
                .type = "python",
                .code = "import plotly.express as px\n"
                        "\n"
                        "line_chart = px.line(df, x=\"step\", y=\"value\", markers=True,\n"
                        "                     title=\"Plotly: value by step\")\n"
                        "line_chart",
                .reads = { "df", NULL },
                .writes = { "px", "line_chart", NULL },
        },
        {
                .id = "demo-cell-6",
                .type = "python",
                .code = "import altair as alt\n"
                        "\n"
                        "bar_chart = (\n"
                        "    alt.Chart(df)\n"
                        "    .mark_bar()\n"
                        "    .encode(x=\"step:O\", y=\"squared:Q\", tooltip=[\"step\", \"value\", "
                        "\"squared\"])\n"
                        "    .properties(title=\"Altair: squared value by step\")\n"
                        ")\n"
                        "bar_chart",
                .reads = { "df", NULL },
                .writes = { "alt", "bar_chart", NULL },
        },
};

static const struct demo_cell blank_cells[] = {
        {
                .id = "blank-cell-1",
                .type = "python",
                .code = "",
                .reads = { NULL },
                .writes = { NULL },
        },
};

static inline void cJSON_Deletep(cJSON **p)
{
        if (*p)
                cJSON_Delete(*p);
}
#define _cleanup_json_ _cleanup_(cJSON_Deletep)

static int add_names(cJSON *cell, const char *key, const char *const *names)
{
        cJSON *list;

        list = cJSON_AddArrayToObject(cell, key);
        if (!list)
                return -ENOMEM;
        for (; *names; names++) {
                cJSON *name = cJSON_CreateString(*names);

                if (!name)
                        return -ENOMEM;
                cJSON_AddItemToArray(list, name);
        }
        return 0;
}

static int cell_new(const struct demo_cell *d, cJSON **ret)
{
        _cleanup_json_ cJSON *cell = NULL;
        int r;

        cell = cJSON_CreateObject();
        if (!cell)
                return -ENOMEM;
        if (!cJSON_AddStringToObject(cell, "id", d->id) || !cJSON_AddStringToObject(cell, "type", d->type) ||
            !cJSON_AddStringToObject(cell, "code", d->code) ||
            !cJSON_AddStringToObject(cell, "status", "idle") ||
            !cJSON_AddStringToObject(cell, "stdout", "") || !cJSON_AddArrayToObject(cell, "outputs") ||
            !cJSON_AddNullToObject(cell, "error"))
                return -ENOMEM;
        r = add_names(cell, "reads", d->reads);
        if (r < 0)
                return r;
        r = add_names(cell, "writes", d->writes);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(cell);
        return 0;
}

static int cells_new(const struct demo_cell *cells, size_t n, cJSON **ret)
{
        _cleanup_json_ cJSON *array = NULL;
        size_t i;
        int r;

        array = cJSON_CreateArray();
        if (!array)
                return -ENOMEM;
        for (i = 0; i < n; i++) {
                cJSON *cell;

                r = cell_new(&cells[i], &cell);
                if (r < 0)
                        return r;
                cJSON_AddItemToArray(array, cell);
        }

        *ret = TAKE_PTR(array);
        return 0;
}

int demo_cells_new(cJSON **ret)
{
        return cells_new(demo_cells, ELEMENTSOF(demo_cells), ret);
}

int blank_cells_new(cJSON **ret)
{
        return cells_new(blank_cells, ELEMENTSOF(blank_cells), ret);
}
