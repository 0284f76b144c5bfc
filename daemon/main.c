/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "conf.h"
#include "log.h"
#include "server.h"
#include "store.h"
#include "sync.h"

#define DB_FILE_NAME "notebookd.db"

typedef struct Args {
        const char *state_dir;
        const char *socket_path;
        const char *config_path;
        int durability; /* -1 unset, 0 normal, 1 full */
        int log_level;  /* -1 unset */
} Args;

static void help(void)
{
        printf("Usage: notebookd [OPTIONS]\n"
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
               "  --durability MODE      full (default): fsync every commit; normal: may lose the last\n"
               "                         commits on power loss, never on a crash of notebookd\n"
               "  --log-level LEVEL      debug, info (default), notice, warning, err\n"
               "  -h --help              show this help\n"
               "     --version           show the version\n"
               "\n"
               "See notebookd(8), notebookd.conf(5) and notebookctl(1).\n");
}

static int parse_argv(int argc, char **argv, Args *a)
{
        enum { ARG_STATE_DIR = 0x100, ARG_SOCKET, ARG_CONFIG, ARG_DURABILITY, ARG_LOG_LEVEL, ARG_VERSION };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "config", required_argument, NULL, ARG_CONFIG },
                { "durability", required_argument, NULL, ARG_DURABILITY },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                {},
        };
        int c;

        *a = (Args){ .durability = -1, .log_level = -1 };
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
                        if (a->log_level < 0) {
                                fprintf(stderr, "notebookd: unknown log level \"%s\".\n", optarg);
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

static void report_config_error(void *userdata, const char *path, unsigned line, const char *message)
{
        if (line > 0)
                log_error("%s:%u: %s", path, line, message);
        else
                log_error("%s: %s", path, message);
}

/* The path under an XDG base directory, or under $HOME/fallback when the variable is unset. */
static char *xdg_path(const char *var, const char *fallback, const char *leaf)
{
        const char *base = getenv(var), *home = getenv("HOME");
        char *p = NULL;

        if (base && base[0] == '/')
                return asprintf(&p, "%s/%s", base, leaf) < 0 ? NULL : p;
        if (fallback && home && home[0] == '/')
                return asprintf(&p, "%s/%s/%s", home, fallback, leaf) < 0 ? NULL : p;
        return NULL;
}

static char *default_socket_path(void)
{
        char *p = NULL;

        if (geteuid() == 0)
                return strdup("/run/notebookd/notebookd.sock");
        p = xdg_path("XDG_RUNTIME_DIR", NULL, "notebookd/notebookd.sock");
        if (!p && asprintf(&p, "/run/user/%u/notebookd/notebookd.sock", (unsigned)geteuid()) < 0)
                return NULL;
        return p;
}

static void on_sync_notify(void *userdata, const char *user_id, const char *notebook_id)
{
        sync_notify_change(userdata, user_id, notebook_id);
}

static int on_sync_status(void *userdata, const char *user_id, cJSON *obj)
{
        return sync_status(userdata, user_id, obj);
}

static void on_sync_pull(void *userdata, const char *user_id)
{
        if (user_id)
                sync_pull_user(userdata, user_id);
        else
                sync_pull_now(userdata);
}

/* A notebook changed by the remote: its watchers are told. */
static void on_remote_change(void *userdata, const char *user_id, const char *notebook_id)
{
        server_notify_change(userdata, user_id, notebook_id, "remote");
}

/* A remote is configured by a [remote] section (unless it says enabled = no), or by an endpoint
 * in the environment. */
static bool remote_wanted(const Config *c)
{
        if (c->remote.present)
                return c->remote.enabled;
        return getenv("AWS_ENDPOINT_URL_DYNAMODB") && *getenv("AWS_ENDPOINT_URL_DYNAMODB");
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        Server *server = userdata;

        log_info("Received %s, stopping.", strsignal((int)si->ssi_signo));
        (void)sd_notify(false, "STOPPING=1");
        server_drain(server);
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int run(int argc, char **argv)
{
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(server_freep) Server *server = NULL;
        _cleanup_(sync_freep) Sync *sync = NULL;
        _cleanup_(store_freep) Store *store = NULL;
        _cleanup_free_ char *state_dir = NULL, *socket_path = NULL, *config_path = NULL, *db_path = NULL;
        Config *config = NULL;
        _cleanup_close_ int listen_fd = -1, lock_fd = -1;
        bool bound_here = false;
        char err[512];
        Rpc rpc = {};
        Args args;
        sigset_t mask;
        int r, n;

        r = parse_argv(argc, argv, &args);
        if (r <= 0)
                return r < 0 ? 2 : 0;

        /* Every peer costs a descriptor: take all the kernel allows this process (as systemd does for
         * its services), so the soft limit does not cap MAX_CONNECTIONS. */
        {
                struct rlimit rl;

                if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                        rl.rlim_cur = rl.rlim_max;
                        (void)setrlimit(RLIMIT_NOFILE, &rl);
                }
        }
        if (args.log_level >= 0)
                log_set_max_level(args.log_level);

        /* Configuration: the file named, else the default one if it exists. */
        if (args.config_path)
                config_path = strdup(args.config_path);
        else if (geteuid() == 0)
                config_path = strdup("/etc/notebookd/notebookd.conf");
        else
                config_path = xdg_path("XDG_CONFIG_HOME", ".config", "notebookd/notebookd.conf");
        if (config_path) {
                r = config_load(config_path, report_config_error, NULL, &config);
                if (r == -ENOENT && !args.config_path)
                        config = NULL;
                else if (r == -EINVAL)
                        return log_error("Configuration %s is invalid, not starting.", config_path), 1;
                else if (r < 0)
                        return log_error_errno(r, "Cannot read %s: %m", config_path), 1;
        }
        if (!config && !(config = config_new()))
                return log_oom(), 1;
        if (args.durability >= 0)
                config->durability_full = args.durability;
        if (args.log_level < 0 && config->log_level >= 0)
                log_set_max_level(config->log_level);

        /* Paths: command line, then configuration, then defaults. */
        if (args.state_dir)
                state_dir = strdup(args.state_dir);
        else if (config->state_dir)
                state_dir = strdup(config->state_dir);
        else if (geteuid() == 0)
                state_dir = strdup("/var/lib/notebookd");
        else
                state_dir = xdg_path("XDG_STATE_HOME", ".local/state", "notebookd");
        if (args.socket_path)
                socket_path = strdup(args.socket_path);
        else if (config->socket_path)
                socket_path = strdup(config->socket_path);
        else
                socket_path = default_socket_path();
        if (!state_dir || !socket_path) {
                log_error("Cannot tell where to keep state or the socket: give --state-dir and --socket.");
                goto fail;
        }

        r = mkdir_parents(state_dir, 0700);
        if (r < 0) {
                log_error_errno(r, "Cannot create %s: %m", state_dir);
                goto fail;
        }
        /* One daemon per state directory, whatever socket each was given. */
        {
                _cleanup_free_ char *lock_path = NULL;

                if (asprintf(&lock_path, "%s/notebookd.lock", state_dir) < 0) {
                        log_oom();
                        goto fail;
                }
                lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
                if (lock_fd < 0) {
                        log_error_errno(-errno, "Cannot open %s: %m", lock_path);
                        goto fail;
                }
                if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
                        if (errno == EWOULDBLOCK)
                                log_error("Another notebookd is using %s.", state_dir);
                        else
                                log_error_errno(-errno, "Cannot lock %s: %m", lock_path);
                        goto fail;
                }
        }
        if (asprintf(&db_path, "%s/%s", state_dir, DB_FILE_NAME) < 0) {
                log_oom();
                goto fail;
        }
        r = store_open(db_path, config->durability_full, &store, err, sizeof(err));
        if (r < 0) {
                log_error("Cannot open the database: %s", err);
                goto fail;
        }

        /* A socket passed by the service manager is used as it is; otherwise we bind our own. */
        n = sd_listen_fds(true);
        if (n > 1) {
                log_error("Received %d sockets through LISTEN_FDS, expected one.", n);
                goto fail;
        }
        if (n == 1) {
                if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0) {
                        log_error("The socket passed through LISTEN_FDS is not a listening Unix stream "
                                  "socket.");
                        goto fail;
                }
                listen_fd = SD_LISTEN_FDS_START;
        } else {
                _cleanup_free_ char *dir = strdup(socket_path);
                char *slash = dir ? strrchr(dir, '/') : NULL;

                if (slash && slash != dir) {
                        *slash = 0;
                        r = mkdir_parents(dir, 0755);
                        if (r < 0) {
                                log_error_errno(r, "Cannot create %s: %m", dir);
                                goto fail;
                        }
                }
                /* Other uids may connect only when the configuration binds some of them. */
                r = server_bind(socket_path, config->n_bindings > 0 || config->have_admin_gid ? 0666 : 0600,
                                &listen_fd);
                if (r == -EADDRINUSE) {
                        log_error("Another notebookd is already serving %s.", socket_path);
                        goto fail;
                }
                if (r == -EEXIST) {
                        log_error("%s exists and is not a socket; not touching it.", socket_path);
                        goto fail;
                }
                if (r < 0) {
                        log_error_errno(r, "Cannot listen on %s: %m", socket_path);
                        goto fail;
                }
                bound_here = true;
        }

        r = sd_event_default(&event);
        if (r < 0) {
                log_error_errno(r, "Cannot create the event loop: %m");
                goto fail;
        }
        rpc = (Rpc){
                .store = store,
                .config = config,
                .state_dir = state_dir,
                .db_path = db_path,
                .started_usec = now_monotonic_usec(),
        };
        r = server_new(event, &rpc, listen_fd, config->max_line_bytes, config->admin_gid,
                       config->have_admin_gid, &server);
        if (r < 0) {
                log_error_errno(r, "Cannot set up the server: %m");
                goto fail;
        }
        listen_fd = -1; /* the server owns it now */

        if (remote_wanted(config)) {
                r = sync_new(event, store, &config->remote, &sync);
                if (r < 0) {
                        log_error_errno(r, "Cannot set up sync to DynamoDB: %m");
                        goto fail;
                }
                rpc.sync_notify = on_sync_notify;
                rpc.sync_status = on_sync_status;
                rpc.sync_pull = on_sync_pull;
                rpc.sync_userdata = sync;
                sync_set_change_callback(sync, on_remote_change, server);
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        if ((r = sd_event_add_signal(event, NULL, SIGTERM, on_signal, server)) < 0 ||
            (r = sd_event_add_signal(event, NULL, SIGINT, on_signal, server)) < 0) {
                log_error_errno(r, "Cannot watch signals: %m");
                goto fail;
        }

        {
                char where[512];

                log_info("notebookd %s ready: socket %s, database %s (durability %s); sync: %s.",
                         PACKAGE_VERSION, socket_path, db_path, config->durability_full ? "full" : "normal",
                         sync ? remote_describe(sync, where, sizeof(where))
                              : "local-only, no remote configured");
        }
        (void)sd_notify(false, "READY=1\nSTATUS=Serving.");

        r = sd_event_loop(event);
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                goto fail;
        }
        server = server_free(server);
        /* Pushes in flight are dropped; their notebooks stay dirty and go out at the next start. */
        sync = sync_free(sync);
        if (bound_here)
                (void)unlink(socket_path);
        config_free(config);
        log_info("Stopped.");
        return 0;

fail:
        /* In dependency order: the engine uses the store and the configuration. */
        server = server_free(server);
        sync = sync_free(sync);
        config_free(config);
        return 1;
}

int main(int argc, char **argv)
{
        return run(argc, argv);
}
