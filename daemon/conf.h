/* SPDX-License-Identifier: MIT */
#pragma once

/* notebookd.conf: an INI file. See doc/notebookd.conf.5.
 *
 *   [daemon]
 *   state_dir = /var/lib/notebookd
 *   socket = /run/notebookd/notebookd.sock
 *   durability = full            # full | normal
 *   max_line_bytes = 16777216    # 65536 ... 1073741824
 *   log_level = info             # debug info notice warning err crit
 *   admin_group = notebook-admin # members may act for any user_id
 *   max_notebook_bytes = 16777216 # 65536 ... 1073741824: cells, names and outputs of one notebook
 *   output_soft_limit = 8388608   # unread reply bytes past which a peer's requests wait
 *   output_hard_limit = 67108864  # unread reply bytes past which a peer is disconnected
 *   uid_buffer_limit = 134217728  # buffered bytes (requests and replies) of one uid's peers
 *   buffer_limit = 268435456      # buffered bytes of all peers
 *   request_timeout_s = 30        # half a request, or unread replies, for longer: disconnected
 *   idle_timeout_s = 600          # a peer with nothing to do and no watch (0: never)
 *   history_revisions = 100       # 0 ... 10000: revisions of each notebook kept for restore
 *   history_max_age_days = 30     # 0 (no age bound) ... 36500
 *
 *   [users]
 *   # uid or user name = user_id[, user_id ...]
 *   1000 = alice
 *   bob = bob, bob-work
 *
 *   [remote]                     # sync to DynamoDB; never credentials here
 *   enabled = yes                # yes | no; yes when the section exists
 *   table = notebooks            # 3-255 of [A-Za-z0-9_.-]
 *   region = us-east-1           # letters, digits, '-'
 *   endpoint = http://127.0.0.1:8000
 *   ca_file = /etc/ssl/ca.pem    # absolute path
 *   debounce_ms = 500            # 0 ... 600000
 *   max_delay_ms = 5000          # debounce_ms ... 3600000
 *   max_in_flight = 8            # 1 ... 256
 *   pull_interval_s = 60         # 0 (start and on demand only) ... 86400
 *   connect_timeout_ms = 5000    # 100 ... 600000
 *   request_timeout_ms = 30000   # 100 ... 3600000
 *   parts_table = notebooks-parts  # where big notebooks keep their parts; default TABLE-parts
 *   parts_grace_s = 3600         # 1 ... 604800: how long an unused part stays readable
 *
 *   [metrics]
 *   listen = 127.0.0.1:9464      # IPv4:PORT or [IPv6]:PORT: Prometheus metrics on HTTP; off if unset
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "util.h"

typedef struct UserBinding {
        uid_t uid;
        char **user_ids; /* n_user_ids strings, in the order written; the first is the default */
        size_t n_user_ids;
} UserBinding;

/* [remote]: the DynamoDB table notebooks are synced to. config_new() sets every default, also
 * when the file has no [remote]. Credentials never go here: they come from the environment,
 * systemd credentials, ~/.aws/credentials, or container or instance metadata. */
typedef struct RemoteConfig {
        bool present; /* the section appeared */
        bool enabled;
        char *table;       /* default "notebooks" */
        char *parts_table; /* NULL: table + REMOTE_PARTS_SUFFIX (remote_parts_table()) */
        char *region;      /* NULL: from the environment or ~/.aws/config */
        char *endpoint;    /* NULL: from the environment, else AWS's for the region */
        char *ca_file;     /* NULL: the system's CA certificates */
        uint64_t debounce_usec;
        uint64_t max_delay_usec;
        uint64_t pull_interval_usec; /* 0: at start and on demand only */
        uint64_t connect_timeout_usec;
        uint64_t request_timeout_usec;
        unsigned max_in_flight;
        uint64_t parts_grace_usec; /* a part no version names is deleted this long after that is seen */
} RemoteConfig;

#define REMOTE_PARTS_SUFFIX "-parts"

/* [metrics]: where Prometheus may scrape the daemon's metrics over HTTP. Off unless listen is set. */
typedef struct MetricsConfig {
        char *listen; /* as written, NULL: off */
        struct sockaddr_storage addr;
        socklen_t addr_len;
} MetricsConfig;

/* Parses a numeric IPv4 address and port ("127.0.0.1:9464") or an IPv6 one in brackets
 * ("[::1]:9464"), port 1 to 65535. 0, -EINVAL for anything else (no host names: nothing is looked
 * up). Pure. */
int config_parse_listen(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len);

/* The parts table's name, in a new string (NULL: out of memory). */
char *remote_parts_table(const RemoteConfig *c);

/* What one peer, one uid and all peers may hold of the daemon (doc/protocol.md, "Limits"). They
 * apply live: a reload changes them. */
typedef struct Limits {
        uint64_t max_notebook_bytes;
        uint64_t output_soft_bytes;
        uint64_t output_hard_bytes;
        uint64_t uid_buffer_bytes;
        uint64_t buffer_bytes;
        uint64_t request_timeout_usec;
        uint64_t idle_timeout_usec;    /* 0: never */
        uint64_t history_revisions;    /* revisions of each notebook kept (0: none) */
        uint64_t history_max_age_usec; /* and for at most this long (0: no age bound) */
} Limits;

/* The defaults, also for a daemon without a configuration file. */
extern const Limits limits_default;

/* A privileged uid and its login name: what a request of it that names no user_id acts as. */
typedef struct UidName {
        uid_t uid;
        char *name;
} UidName;

typedef struct Config {
        char *state_dir;   /* NULL: not set in the file */
        char *socket_path; /* NULL: not set in the file */
        bool durability_full;
        size_t max_line_bytes;
        int log_level; /* -1: not set */
        bool have_admin_gid;
        gid_t admin_gid;
        UserBinding *bindings;
        size_t n_bindings;
        Limits limits;
        RemoteConfig remote;
        MetricsConfig metrics;
        UidName *names; /* config_resolve_names() */
        size_t n_names;
} Config;

/* Called once per problem found; line is 0 for problems not tied to a line. */
typedef void (*ConfigErrorFunc)(void *userdata, const char *path, unsigned line, const char *message);

/* A configuration with every default and no bindings. NULL on OOM. */
Config *config_new(void);
Config *config_free(Config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Config *, config_free)

/* Parses path. Reports every problem through report (all of them, not just the first), and
 * returns -EINVAL if there was any, leaving *ret untouched; -ENOENT and other -errno if the file
 * cannot be read (not reported through report); 0 and a new Config on success. */
int config_load(const char *path, ConfigErrorFunc report, void *userdata, Config **ret);

/* Where the configuration is when none is named: /etc/notebookd/notebookd.conf for root,
 * $XDG_CONFIG_HOME/notebookd/notebookd.conf (or ~/.config/...) for others. NULL on OOM or when
 * there is no home to look in. */
char *config_default_path(void);

/* Called for a setting of a newly read configuration that differs from the one in effect but
 * cannot change while the daemon runs; key names it as the file does, e.g. "[daemon] socket". */
typedef void (*ConfigRestartFunc)(void *userdata, const char *key);

/* For a reload: next is the configuration just read, current the one in effect. The settings that
 * take effect only at a start (state_dir, socket, durability, max_line_bytes, admin_group, the
 * whole [remote] section and [metrics] listen) are exchanged between the two, so that next describes what is
 * in effect and may replace current, which is left holding the new file's values of those settings, to be
 * freed. Every such setting whose value differs is reported. What stays from next is what applies
 * live: log_level and the [users] bindings.
 *
 * Anything that holds pointers into current's restart-only settings (the sync engine holds the
 * [remote] strings) may keep them: they move to next with their values. */
void config_carry_restart_settings(Config *next, Config *current, ConfigRestartFunc report, void *userdata);

/* Looks up the login names of the privileged uids (root, the daemon's own user, and the members of
 * the admin group, have_admin_gid and admin_gid, as listed in the group database) into c->names.
 * It asks the user database, which may be remote (LDAP, sssd) and slow: call it at start and
 * where the configuration is read for a reload, never from the loop. Names longer than a user_id
 * are left out. 0, or -ENOMEM. */
int config_resolve_names(Config *c, bool have_admin_gid, gid_t admin_gid);
/* The name config_resolve_names() found for uid, or NULL. */
const char *config_uid_name(const Config *c, uid_t uid);

/* The binding of uid, or NULL. */
const UserBinding *config_find_uid(const Config *c, uid_t uid);
