/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "conf.h"
#include "daemon.h"
#include "exporter.h"
#include "log.h"
#include "server.h"
#include "service.h"
#include "store.h"
#include "sync.h"

#define DB_FILE_NAME "notebookd.db"

/* What the signal handlers and the status line need of the running daemon. */
typedef struct Daemon {
        const DaemonArgs *args;
        const char *config_path; /* the file read, or NULL if there is none to read */
        Config *config;          /* in effect; rpc.config points to it */
        Rpc rpc;
        Server *server;
        Sync *sync;
        Service *service;
        ExporterSources metrics;
        Exporter *exporter; /* [metrics] listen */
        sd_event_source *flush_io;
        const char *socket_path;
        bool bound_here; /* we created the socket file (not passed by the service manager) */
        bool stopping;

        /* A reload reads the file and asks the user and group databases (which may be remote and
         * slow) in a thread of its own; the loop applies the result when the thread is done. */
        struct {
                pthread_t thread;
                int event_fd; /* readable when the thread is done */
                sd_event_source *io;
                bool running, again; /* again: another SIGHUP came meanwhile */
                bool have_admin_gid;
                gid_t admin_gid;
                int r;
                Config *next;
        } reload;
} Daemon;

/* The store's flusher made commits durable: the server answers the requests they hold, the sync
 * engine sends the writes whose tokens they recorded. */
static int on_flushed(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        Daemon *d = userdata;
        uint64_t n;

        (void)!read(fd, &n, sizeof(n));
        server_flushed(d->server);
        if (d->sync)
                sync_flushed(d->sync);
        return 0;
}

static void report_config_error(void *userdata, const char *path, unsigned line, const char *message)
{
        if (line > 0)
                log_error("%s:%u: %s", path, line, message);
        else
                log_error("%s: %s", path, message);
}

/* --check-config: every problem on stderr as FILE:LINE: MESSAGE (as compilers write them), then a
 * verdict naming the file. */
static void report_check_error(void *userdata, const char *path, unsigned line, const char *message)
{
        unsigned *n = userdata;

        (*n)++;
        if (line > 0)
                fprintf(stderr, "%s:%u: %s\n", path, line, message);
        else
                fprintf(stderr, "%s: %s\n", path, message);
}

int daemon_check_config(const DaemonArgs *a)
{
        _cleanup_free_ char *path = a->config_path ? strdup(a->config_path) : config_default_path();
        Config *c = NULL;
        unsigned n = 0;
        int r;

        if (!path) {
                fprintf(stderr, "notebookd: cannot tell where the configuration is: give --config FILE.\n");
                return EXIT_FAILED_START;
        }
        r = config_load(path, report_check_error, &n, &c);
        if (r == -ENOENT && !a->config_path) {
                printf("%s: no such file; notebookd would run with the defaults.\n", path);
                return 0;
        }
        if (r == -EINVAL) {
                fprintf(stderr, "%s: %u problem%s found.\n", path, n, n == 1 ? "" : "s");
                return EXIT_FAILED_START;
        }
        if (r < 0) {
                fprintf(stderr, "%s: cannot read: %s\n", path, strerror(-r));
                return EXIT_FAILED_START;
        }
        config_free(c);
        printf("%s: OK\n", path);
        return 0;
}

static char *default_socket_path(void)
{
        char *p = NULL;

        if (geteuid() == 0)
                return strdup("/run/notebookd/notebookd.sock");
        p = xdg_dir_path("XDG_RUNTIME_DIR", NULL, "notebookd/notebookd.sock");
        if (!p && asprintf(&p, "/run/user/%u/notebookd/notebookd.sock", (unsigned)geteuid()) < 0)
                return NULL;
        return p;
}

/* The command line wins over the file: its values are put into the configuration, which then
 * holds what is in effect (also for the comparison at a reload). */
static int config_apply_args(Config *c, const DaemonArgs *a)
{
        if (a->state_dir) {
                free(c->state_dir);
                if (!(c->state_dir = strdup(a->state_dir)))
                        return -ENOMEM;
        }
        if (a->socket_path) {
                free(c->socket_path);
                if (!(c->socket_path = strdup(a->socket_path)))
                        return -ENOMEM;
        }
        if (a->durability >= 0)
                c->durability_full = a->durability;
        if (a->log_level >= 0)
                c->log_level = a->log_level;
        return 0;
}

static int config_effective_log_level(const Config *c)
{
        return c->log_level >= 0 ? c->log_level : LOG_INFO;
}

/* Other uids may connect only when the configuration binds some of them. */
/* The limits the store applies itself: notebook size and history. They apply live. */
static void store_set_limits(Store *s, const Limits *l)
{
        store_set_max_notebook_bytes(s, l->max_notebook_bytes);
        store_set_history(s, (unsigned)l->history_revisions, l->history_max_age_usec);
}

static mode_t socket_mode(const Config *c)
{
        return c->n_bindings > 0 || c->have_admin_gid ? 0666 : 0600;
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

static int on_metrics_render(void *userdata, MetricsFormat format, char **ret, size_t *ret_len)
{
        Daemon *d = userdata;

        return exporter_render(&d->metrics, format, ret, ret_len);
}

/* A notebook changed by the remote: its watchers are told. */
static void on_remote_change(void *userdata, const cJSON *change)
{
        server_notify_change(userdata, change, "remote");
}

/* A remote is configured by a [remote] section (unless it says enabled = no), or by an endpoint
 * in the environment. */
static bool remote_wanted(const Config *c)
{
        if (c->remote.present)
                return c->remote.enabled;
        return getenv("AWS_ENDPOINT_URL_DYNAMODB") && *getenv("AWS_ENDPOINT_URL_DYNAMODB");
}

/* STATUS=: what `systemctl status` shows. */
static const char *status_line(void *userdata, char *buf, size_t size)
{
        Daemon *d = userdata;
        unsigned n = server_connections(d->server);
        char sync[256];

        snprintf(buf, size, "Serving, %u client%s; sync: %s", n, n == 1 ? "" : "s",
                 sync_summary(d->sync, sync, sizeof(sync)));
        return buf;
}

static void report_needs_restart(void *userdata, const char *key)
{
        Daemon *d = userdata;

        log_warning("%s: %s changed; it needs a restart to take effect, the value in use is kept.",
                    d->config_path, key);
}

static void *reload_thread(void *userdata)
{
        Daemon *d = userdata;
        uint64_t one = 1;

        d->reload.r = config_load(d->config_path, report_config_error, NULL, &d->reload.next);
        if (d->reload.r == -ENOENT && !d->args->config_path) {
                d->reload.next = config_new();
                d->reload.r = d->reload.next ? 1 : -ENOMEM;
        }
        if (d->reload.r >= 0 &&
            config_resolve_names(d->reload.next, d->reload.have_admin_gid, d->reload.admin_gid) < 0)
                d->reload.r = -ENOMEM;
        (void)!write(d->reload.event_fd, &one, sizeof(one));
        return NULL;
}

/* SIGHUP: the file is read again, off the loop. */
static void daemon_reload(Daemon *d)
{
        int r;

        if (d->reload.running) {
                d->reload.again = true;
                return;
        }
        service_reloading(d->service);
        if (!d->config_path) {
                log_notice("Received SIGHUP, but there is no configuration file to read.");
                service_ready(d->service);
                return;
        }
        log_info("Received SIGHUP, reloading %s.", d->config_path);
        /* admin_group needs a restart: the names are those of the group in effect. */
        d->reload.have_admin_gid = d->config->have_admin_gid;
        d->reload.admin_gid = d->config->admin_gid;
        d->reload.next = NULL;
        r = pthread_create(&d->reload.thread, NULL, reload_thread, d);
        if (r != 0) {
                log_error_errno(-r, "Cannot start reading %s: %m", d->config_path);
                service_ready(d->service);
                return;
        }
        d->reload.running = true;
}

/* The reload thread is done. A file with any problem changes nothing (every problem is logged);
 * a valid one applies what can change live and says what needs a restart. */
static int on_reloaded(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        Daemon *d = userdata;
        _cleanup_(config_freep) Config *next = NULL;
        Config *old;
        size_t n_ids = 0;
        uint64_t n;
        int r;

        (void)!read(fd, &n, sizeof(n));
        if (!d->reload.running)
                return 0;
        (void)pthread_join(d->reload.thread, NULL);
        d->reload.running = false;
        next = TAKE_PTR(d->reload.next);
        r = d->reload.r;

        if (r == 1) {
                log_info("%s does not exist: the defaults apply.", d->config_path);
        } else if (r == -EINVAL) {
                log_error("%s is invalid; keeping the settings in use.", d->config_path);
                goto done;
        } else if (r == -ENOMEM) {
                log_oom();
                goto done;
        } else if (r < 0) {
                log_error_errno(r, "Cannot read %s, keeping the settings in use: %m", d->config_path);
                goto done;
        }
        if (config_apply_args(next, d->args) < 0) {
                log_oom();
                goto done;
        }

        config_carry_restart_settings(next, d->config, report_needs_restart, d);
        /* One loop, one thread: no request is in the middle of using the old configuration, which
         * is freed on return. */
        old = d->config;
        d->config = TAKE_PTR(next);
        next = old;
        d->rpc.config = d->config;
        store_set_limits(d->rpc.store, &d->config->limits);

        log_set_max_level(config_effective_log_level(d->config));
        if (d->bound_here && chmod(d->socket_path, socket_mode(d->config)) < 0)
                log_warning_errno(-errno, "Cannot change the mode of %s: %m", d->socket_path);
        for (size_t i = 0; i < d->config->n_bindings; i++)
                n_ids += d->config->bindings[i].n_user_ids;
        log_info("Reloaded %s: log level %s, %zu uid%s bound to %zu user_id%s.", d->config_path,
                 log_level_to_string(config_effective_log_level(d->config)), d->config->n_bindings,
                 d->config->n_bindings == 1 ? "" : "s", n_ids, n_ids == 1 ? "" : "s");
done:
        service_ready(d->service);
        if (d->reload.again && !d->stopping) {
                d->reload.again = false;
                daemon_reload(d);
        }
        return 0;
}

/* Waits for a reload in progress (its result is dropped) and frees what reloading holds. */
static void reload_stop(Daemon *d)
{
        if (d->reload.running) {
                (void)pthread_join(d->reload.thread, NULL);
                d->reload.running = false;
                d->reload.next = config_free(d->reload.next);
        }
        d->reload.io = sd_event_source_disable_unref(d->reload.io);
        closep(&d->reload.event_fd);
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        Daemon *d = userdata;

        if (!d->stopping)
                daemon_reload(d);
        return 0;
}

/* How long a stop waits for the writes to DynamoDB in flight (after the local requests in hand
 * were answered); the unit's TimeoutStopSec= leaves room for it. */
#define SYNC_GRACE_USEC (5 * USEC_PER_SEC)

static void on_sync_drained(void *userdata)
{
        (void)sd_event_exit(userdata, 0);
}

/* SIGTERM, SIGINT: stop accepting, answer what was received (its writes commit first), give the
 * writes to DynamoDB in flight a bounded grace time, exit 0. What is still to be synced stays
 * marked in the database and goes out at the next start. */
static int on_stop_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        Daemon *d = userdata;

        if (d->stopping)
                return 0;
        d->stopping = true;
        log_info("Received %s, stopping.", si->ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
        service_stopping(d->service, "Stopping: finishing the requests in hand.");
        server_drain(d->server);
        if (d->sync) {
                service_stopping(d->service, "Stopping: waiting for the writes to DynamoDB in flight.");
                if (sync_drain(d->sync, SYNC_GRACE_USEC, on_sync_drained, sd_event_source_get_event(s)) >= 0)
                        return 0;
        }
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

int daemon_run(const DaemonArgs *a)
{
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(store_freep) Store *store = NULL;
        _cleanup_free_ char *state_dir = NULL, *socket_path = NULL, *config_path = NULL, *db_path = NULL;
        _cleanup_close_ int listen_fd = -1, lock_fd = -1;
        char err[512];
        Daemon d = { .args = a, .reload.event_fd = -1 };
        sigset_t mask;
        int r, n;

        /* Blocked from the start, to be taken by the event loop: a signal that came before the
         * loop watches it waits instead of killing (SIGHUP) or half-stopping the daemon. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        /* Every peer costs a descriptor: take all the kernel allows this process (as systemd does for
         * its services), so the soft limit does not cap MAX_CONNECTIONS. */
        {
                struct rlimit rl;

                if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                        rl.rlim_cur = rl.rlim_max;
                        (void)setrlimit(RLIMIT_NOFILE, &rl);
                }
        }
        log_open();
        if (a->log_level >= 0)
                log_set_max_level(a->log_level);
        /* A system service may start without $HOME, where credentials files are looked for; the
         * user database is asked here, once, not on the loop when credentials are read. */
        if (!getenv("HOME")) {
                struct passwd pw, *res = NULL;
                char buf[4096];

                if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res && res->pw_dir[0] == '/')
                        (void)setenv("HOME", res->pw_dir, 0);
        }

        /* Configuration: the file named, else the default one if it exists. */
        config_path = a->config_path ? strdup(a->config_path) : config_default_path();
        if (config_path) {
                r = config_load(config_path, report_config_error, NULL, &d.config);
                if (r == -ENOENT && !a->config_path)
                        d.config = NULL;
                else if (r == -EINVAL)
                        return log_error("Configuration %s is invalid, not starting.", config_path),
                               EXIT_FAILED_START;
                else if (r < 0)
                        return log_error_errno(r, "Cannot read %s: %m", config_path), EXIT_FAILED_START;
        }
        d.config_path = config_path;
        if (!d.config && !(d.config = config_new()))
                return log_oom(), EXIT_FAILED_START;
        if (config_apply_args(d.config, a) < 0 ||
            config_resolve_names(d.config, d.config->have_admin_gid, d.config->admin_gid) < 0) {
                log_oom();
                goto fail;
        }
        log_set_max_level(config_effective_log_level(d.config));

        /* Paths: command line, then configuration, then defaults. */
        if (d.config->state_dir)
                state_dir = strdup(d.config->state_dir);
        else if (geteuid() == 0)
                state_dir = strdup("/var/lib/notebookd");
        else
                state_dir = xdg_dir_path("XDG_STATE_HOME", ".local/state", "notebookd");
        socket_path = d.config->socket_path ? strdup(d.config->socket_path) : default_socket_path();
        if (!state_dir || !socket_path) {
                log_error("Cannot tell where to keep state or the socket: give --state-dir and --socket.");
                goto fail;
        }
        d.socket_path = socket_path;

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
        /* The files are made private below, but others who may write the directory can replace
         * or remove them, and others who may read or search it learn which exist. Said, not
         * refused: the directory is the operator's. A group that may only read (0750) is fine. */
        {
                struct stat st;

                if (stat(state_dir, &st) < 0)
                        log_warning_errno(-errno, "Cannot check the mode of %s: %m", state_dir);
                else if (st.st_mode & 0027)
                        log_warning("State directory %s has mode %04o: it is %s by users other than its "
                                    "owner; 0700 keeps the database's directory private.",
                                    state_dir, (unsigned)(st.st_mode & 07777),
                                    st.st_mode & 0022 ? "writable" : "readable or searchable");
        }
        if (asprintf(&db_path, "%s/%s", state_dir, DB_FILE_NAME) < 0) {
                log_oom();
                goto fail;
        }
        {
                /* The database holds connection strings, often credentials: only its owner reads
                 * it, even in a directory that others may list (SQLite gives the -wal and -shm
                 * files the database's mode). One made readable before is tightened. */
                mode_t old_umask = umask(0077);

                r = store_open(db_path, d.config->durability_full, &store, err, sizeof(err));
                umask(old_umask);
                if (r < 0) {
                        log_error("Cannot open the database: %s", err);
                        goto fail;
                }
                store_set_limits(store, &d.config->limits);
                r = store_history_expire(store);
                if (r < 0)
                        log_warning_errno(r, "Cannot drop history past its age: %s", store_errmsg(store));
                for (size_t i = 0; i < 3; i++) {
                        static const char *const suffix[] = { "", "-wal", "-shm" };
                        _cleanup_free_ char *path = NULL;
                        struct stat st;

                        if (asprintf(&path, "%s%s", db_path, suffix[i]) >= 0 && stat(path, &st) == 0 &&
                            (st.st_mode & 0077) && chmod(path, st.st_mode & 0700) < 0)
                                log_warning_errno(-errno, "Cannot make %s private: %m", path);
                }
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
                /* Say where we serve: the inherited socket, not the default path. */
                {
                        struct sockaddr_un sa = {};
                        socklen_t len = sizeof(sa);
                        char *where;

                        if (getsockname(listen_fd, (struct sockaddr *)&sa, &len) == 0 &&
                            len > offsetof(struct sockaddr_un, sun_path) && sa.sun_path[0] &&
                            (where = strndup(sa.sun_path, len - offsetof(struct sockaddr_un, sun_path)))) {
                                free(socket_path);
                                d.socket_path = socket_path = where;
                        }
                }
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
                r = server_bind(socket_path, socket_mode(d.config), &listen_fd);
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
                d.bound_here = true;
        }

        r = sd_event_default(&event);
        if (r < 0) {
                log_error_errno(r, "Cannot create the event loop: %m");
                goto fail;
        }
        d.rpc = (Rpc){
                .store = store,
                .config = d.config,
                .state_dir = state_dir,
                .db_path = db_path,
                .started_usec = now_monotonic_usec(),
                .commit_seconds = METRICS_HISTOGRAM_SECONDS,
                .batch_requests = METRICS_HISTOGRAM_COUNT,
                .metrics_render = on_metrics_render,
                .metrics_userdata = &d,
        };
        d.metrics = (ExporterSources){ .rpc = &d.rpc, .start_realtime_usec = now_realtime_usec() };
        r = server_new(event, &d.rpc, listen_fd, d.config->max_line_bytes, d.config->admin_gid,
                       d.config->have_admin_gid, &d.server);
        if (r < 0) {
                log_error_errno(r, "Cannot set up the server: %m");
                goto fail;
        }
        listen_fd = -1; /* the server owns it now */

        if (remote_wanted(d.config)) {
                r = sync_new(event, store, &d.config->remote, &d.sync);
                if (r < 0) {
                        log_error_errno(r, "Cannot set up sync to DynamoDB: %m");
                        goto fail;
                }
                d.rpc.sync_notify = on_sync_notify;
                d.rpc.sync_status = on_sync_status;
                d.rpc.sync_pull = on_sync_pull;
                d.rpc.sync_userdata = d.sync;
                sync_set_change_callback(d.sync, on_remote_change, d.server);
                d.metrics.sync = d.sync;
        }
        if (d.config->metrics.listen) {
                r = exporter_new(event, (const struct sockaddr *)&d.config->metrics.addr,
                                 d.config->metrics.addr_len, on_metrics_render, &d, &d.exporter);
                if (r < 0) {
                        log_error_errno(r, "Cannot serve metrics on %s ([metrics] listen): %m",
                                        d.config->metrics.listen);
                        goto fail;
                }
                log_info("Serving metrics on http://%s/metrics.", d.config->metrics.listen);
        }
        if (store_flush_fd(store) >= 0) {
                r = sd_event_add_io(event, &d.flush_io, store_flush_fd(store), EPOLLIN, on_flushed, &d);
                if (r < 0) {
                        log_error_errno(r, "Cannot watch the store's flusher: %m");
                        goto fail;
                }
        }

        if ((r = sd_event_add_signal(event, NULL, SIGTERM, on_stop_signal, &d)) < 0 ||
            (r = sd_event_add_signal(event, NULL, SIGINT, on_stop_signal, &d)) < 0 ||
            (r = sd_event_add_signal(event, NULL, SIGHUP, on_sighup, &d)) < 0) {
                log_error_errno(r, "Cannot watch signals: %m");
                goto fail;
        }
        d.reload.event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (d.reload.event_fd < 0 ||
            (r = sd_event_add_io(event, &d.reload.io, d.reload.event_fd, EPOLLIN, on_reloaded, &d)) < 0) {
                log_error_errno(d.reload.event_fd < 0 ? -errno : r, "Cannot set up reloading: %m");
                goto fail;
        }
        r = service_new(event, status_line, &d, &d.service);
        if (r < 0) {
                log_error_errno(r, "Cannot set up the watchdog: %m");
                goto fail;
        }

        {
                char where[512];

                log_info("notebookd %s ready: socket %s, database %s (durability %s); sync: %s.",
                         PACKAGE_VERSION, socket_path, db_path,
                         d.config->durability_full ? "full" : "normal",
                         d.sync ? remote_describe(d.sync, where, sizeof(where))
                                : "local-only, no remote configured");
                if (service_watchdog_usec(d.service) > 0)
                        log_debug("Watchdog: the service manager expects a sign of life every %llu ms.",
                                  (unsigned long long)(service_watchdog_usec(d.service) / USEC_PER_MSEC));
        }
        /* Only now: the socket accepts (bound and listening, or inherited) and the store is open. */
        service_ready(d.service);

        r = sd_event_loop(event);
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                goto fail;
        }
        reload_stop(&d);
        d.flush_io = sd_event_source_disable_unref(d.flush_io);
        d.service = service_free(d.service);
        d.exporter = exporter_free(d.exporter);
        d.server = server_free(d.server);
        /* Pushes in flight are dropped; their notebooks stay dirty and go out at the next start. */
        d.sync = sync_free(d.sync);
        if (d.bound_here)
                (void)unlink(socket_path);
        config_free(d.config);
        log_info("Stopped.");
        return 0;

fail:
        /* In dependency order: the engine uses the store and the configuration. */
        reload_stop(&d);
        d.flush_io = sd_event_source_disable_unref(d.flush_io);
        d.service = service_free(d.service);
        d.exporter = exporter_free(d.exporter);
        d.server = server_free(d.server);
        d.sync = sync_free(d.sync);
        config_free(d.config);
        return EXIT_FAILED_START;
}
