/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include "log.h"

static int max_level = LOG_INFO;

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg",     [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit", [LOG_ERR] = "err",
        [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

void log_set_max_level(int level)
{
        max_level = level;
}

int log_get_max_level(void)
{
        return max_level;
}

int log_level_from_string(const char *s)
{
        if (strcasecmp(s, "error") == 0)
                return LOG_ERR;
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (strcasecmp(s, level_names[i]) == 0)
                        return (int)i;
        return -EINVAL;
}

int log_internal(int level, int error, const char *fmt, ...)
{
        int saved = errno;
        char msg[2048];
        va_list ap;

        if (error < 0)
                error = -error;
        /* Let "%m" print the error we were given, not whatever errno happens to hold. */
        errno = error;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

        /* Under journald a "<N>" prefix carries the level; on a terminal the level is spelled out
         * for warnings and worse only, so routine lines stay readable. */
        if (getenv("JOURNAL_STREAM"))
                fprintf(stderr, "<%d>%s\n", level & LOG_PRIMASK, msg);
        else if ((level & LOG_PRIMASK) <= LOG_WARNING)
                fprintf(stderr, "notebookd: %s: %s\n", level_names[level & LOG_PRIMASK], msg);
        else
                fprintf(stderr, "notebookd: %s\n", msg);
        errno = saved;
        return -error;
}
