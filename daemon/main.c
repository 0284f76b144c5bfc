/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "util.h"

static void help(void)
{
        printf("Usage: notebookd [OPTIONS]\n"
               "       notebookd --check-config [--config FILE]\n"
               "\n"
               "Keeps notebooks in a local SQLite store and serves them on a Unix socket.\n"
               "\n"
               "  --state-dir DIR        where the database lives\n"
               "                         (root: /var/lib/notebookd; else $XDG_STATE_HOME/notebookd)\n"
               "  --socket PATH          the socket to listen on (root: /run/notebookd/notebookd.sock;\n"
               "                         else $XDG_RUNTIME_DIR/notebookd/notebookd.sock)\n"
               "  --config FILE          configuration file (default: /etc/notebookd/notebookd.conf for\n"
               "                         root, $XDG_CONFIG_HOME/notebookd/notebookd.conf otherwise, if "
               "present)\n"
               "  --check-config         check the configuration file, report every problem with its\n"
               "                         line, and exit: 0 if it is valid, 1 if not\n"
               "  --durability MODE      full (default): fsync every commit; normal: may lose the last\n"
               "                         commits on power loss, never on a crash of notebookd\n"
               "  --log-level LEVEL      debug, info (default), notice, warning, err, crit\n"
               "  -h --help              show this help\n"
               "     --version           show the version\n"
               "\n"
               "SIGHUP reloads the configuration (log_level and [users]); SIGTERM stops cleanly.\n"
               "See notebookd(8), notebookd.conf(5) and notebookctl(1).\n");
}

static int parse_argv(int argc, char **argv, DaemonArgs *a)
{
        enum {
                ARG_STATE_DIR = 0x100,
                ARG_SOCKET,
                ARG_CONFIG,
                ARG_CHECK_CONFIG,
                ARG_DURABILITY,
                ARG_LOG_LEVEL,
                ARG_VERSION,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "config", required_argument, NULL, ARG_CONFIG },
                { "check-config", no_argument, NULL, ARG_CHECK_CONFIG },
                { "durability", required_argument, NULL, ARG_DURABILITY },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                {},
        };
        int c;

        *a = (DaemonArgs){ .durability = -1, .log_level = -1 };
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("notebookd %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_STATE_DIR:
                        a->state_dir = optarg;
                        break;
                case ARG_SOCKET:
                        a->socket_path = optarg;
                        break;
                case ARG_CONFIG:
                        a->config_path = optarg;
                        break;
                case ARG_CHECK_CONFIG:
                        a->check_config = true;
                        break;
                case ARG_DURABILITY:
                        if (streq(optarg, "full"))
                                a->durability = 1;
                        else if (streq(optarg, "normal"))
                                a->durability = 0;
                        else {
                                fprintf(stderr,
                                        "notebookd: --durability must be full or normal, not \"%s\".\n",
                                        optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_LOG_LEVEL:
                        a->log_level = log_level_from_string(optarg);
                        /* As in the configuration: emerg and alert are not levels for one daemon. */
                        if (a->log_level < LOG_CRIT) {
                                fprintf(stderr,
                                        "notebookd: --log-level must be one of debug, info, notice, "
                                        "warning, "
                                        "err, crit; not \"%s\".\n",
                                        optarg);
                                return -EINVAL;
                        }
                        break;
                default:
                        fprintf(stderr, "Try 'notebookd --help'.\n");
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "notebookd: unexpected argument \"%s\". Try 'notebookd --help'.\n",
                        argv[optind]);
                return -EINVAL;
        }
        return 1;
}

static int run(int argc, char **argv)
{
        DaemonArgs args;
        int r;

        r = parse_argv(argc, argv, &args);
        if (r <= 0)
                return r < 0 ? EXIT_USAGE : 0;
        if (args.check_config)
                return daemon_check_config(&args);
        /* SQLite allocates and frees some 150 KiB per write transaction (its page cache for the
         * statement journal, the journal itself). With glibc's default trim threshold that memory
         * goes back to the kernel at every commit and is asked for again at the next one: brk()
         * twice per commit, a fifth of the time of a busy daemon. A fixed threshold keeps up to
         * 1 MiB at the top of the heap. */
        (void)mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
        return daemon_run(&args);
}

int main(int argc, char **argv)
{
        return run(argc, argv);
}
