/* SPDX-License-Identifier: MIT */

/* nbstress: concurrent writers for the integration tests (concurrency, crash recovery).
 *
 *   nbstress --socket PATH [--user U] --notebook ID [--clients K] [--writes N] [--tag T]
 *            [--pipeline P]
 *
 * Each of K clients (one process each, numbered k = 1..K) connects, creates the cell "T-k" in the
 * notebook, then sets its code to "T-k-i" for i = 1..N with cell.update, keeping up to P requests
 * in flight. Every acknowledged update is printed as one line, "ack T-k i REVISION", written
 * with a single write(2) so that lines of different clients never mix. A line is printed only
 * after its reply arrived, i.e. after the daemon committed it: what a crash test may demand to
 * find on disk afterwards.
 *
 * Exit status: 0 all done; 1 the daemon answered a request with an error (printed on stderr);
 * 3 a connection could not be made or was lost (expected when the daemon is killed); 2 usage or
 * other failure. With several clients, the worst wins in the order 1, 3, 2. */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "nbclient.h"

enum {
        EXIT_DONE = 0,
        EXIT_RPC_ERROR = 1,
        EXIT_FAILURE_ = 2,
        EXIT_TRANSPORT = 3,
};

typedef struct Options {
        const char *socket_path;
        const char *user;
        const char *notebook;
        const char *tag;
        long clients;
        long writes;
        long pipeline;
} Options;

/* Writes a whole line with one write(2) (pipes make writes up to PIPE_BUF atomic); loops only if
 * the kernel takes less, which pipes and files do not do for short lines. */
static int write_line(int fd, const char *s, size_t n)
{
        while (n > 0) {
                ssize_t k = write(fd, s, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                s += k;
                n -= (size_t)k;
        }
        return 0;
}

static void report_rpc_error(const char *cell_id, const char *what, const NbError *e)
{
        char *data = e->data ? cJSON_PrintUnformatted(e->data) : NULL;
        char line[1024];
        int n;

        n = snprintf(line, sizeof(line), "nbstress: %s: %s: error %d: %s%s%s\n", cell_id, what, e->code,
                     e->message ? e->message : "?", data ? " " : "", data ? data : "");
        free(data);
        if (n > (int)sizeof(line) - 1) {
                n = (int)sizeof(line) - 1;
                line[n - 1] = '\n';
        }
        (void)!write_line(STDERR_FILENO, line, (size_t)n);
}

static int transport_error(const char *cell_id, const char *what, int r)
{
        fprintf(stderr, "nbstress: %s: %s: %s\n", cell_id, what, strerror(-r));
        return EXIT_TRANSPORT;
}

static cJSON *params_new(const Options *o, const char *cell_id)
{
        cJSON *p = cJSON_CreateObject();

        if (!p || (o->user && !cJSON_AddStringToObject(p, "user_id", o->user)) ||
            !cJSON_AddStringToObject(p, "notebook_id", o->notebook) ||
            !cJSON_AddStringToObject(p, "cell_id", cell_id)) {
                cJSON_Delete(p);
                return NULL;
        }
        return p;
}

static int run_client(const Options *o, long k)
{
        NbError e = NB_ERROR_INIT;
        NbClient *c = NULL;
        char cell_id[256];
        uint64_t first_id = 0;
        long sent = 0, acked = 0;
        int r, ret = EXIT_DONE;
        cJSON *p;

        snprintf(cell_id, sizeof(cell_id), "%s-%ld", o->tag, k);
        r = nb_client_connect(o->socket_path, &c);
        if (r < 0)
                return transport_error(cell_id, "connect", r);

        p = params_new(o, cell_id);
        if (!p)
                goto oom;
        r = nb_client_call(c, "cell.create", p, NULL, &e);
        if (r == NB_CLIENT_EREMOTE && e.code == NB_ERROR_EXISTS) {
                /* A rerun with the same tag (say, after a crash) goes on with the cell it finds. */
                fprintf(stderr, "nbstress: %s: exists already, updating it\n", cell_id);
        } else if (r == NB_CLIENT_EREMOTE) {
                report_rpc_error(cell_id, "cell.create", &e);
                ret = EXIT_RPC_ERROR;
                goto out;
        } else if (r < 0) {
                ret = transport_error(cell_id, "cell.create", r);
                goto out;
        }

        while (acked < o->writes) {
                cJSON *res = NULL;
                char line[512];
                uint64_t id;
                long i;
                int n;

                while (sent < o->writes && (long)nb_client_in_flight(c) < o->pipeline) {
                        char code[300];

                        snprintf(code, sizeof(code), "%s-%ld", cell_id, sent + 1);
                        p = params_new(o, cell_id);
                        if (!p || !cJSON_AddStringToObject(p, "code", code)) {
                                cJSON_Delete(p);
                                goto oom;
                        }
                        r = nb_client_send(c, "cell.update", p, &id);
                        if (r < 0) {
                                ret = transport_error(cell_id, "send cell.update", r);
                                goto out;
                        }
                        if (sent == 0)
                                first_id = id;
                        sent++;
                }

                r = nb_client_recv(c, &id, &res, &e);
                if (r == NB_CLIENT_EREMOTE) {
                        report_rpc_error(cell_id, "cell.update", &e);
                        ret = EXIT_RPC_ERROR;
                        goto out;
                }
                if (r < 0) {
                        ret = transport_error(cell_id, "receive cell.update", r);
                        goto out;
                }
                /* Ids go up by one per request on a connection, and updates are all we send. */
                i = (long)(id - first_id) + 1;
                n = snprintf(line, sizeof(line), "ack %s %ld %.0f\n", cell_id, i,
                             cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(res, "revision")));
                cJSON_Delete(res);
                if (write_line(STDOUT_FILENO, line, (size_t)n) < 0) {
                        ret = EXIT_FAILURE_;
                        goto out;
                }
                acked++;
        }
out:
        nb_error_done(&e);
        nb_client_free(c);
        return ret;
oom:
        fprintf(stderr, "nbstress: %s: out of memory\n", cell_id);
        ret = EXIT_FAILURE_;
        goto out;
}

static int parse_count(const char *s, long min, long *ret)
{
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || end == s || *end || v < min || v > 1000000000L)
                return -EINVAL;
        *ret = v;
        return 0;
}

static void usage(FILE *f)
{
        fprintf(f, "Usage: nbstress --socket PATH [--user U] --notebook ID [--clients K] [--writes N]\n"
                   "                [--tag T] [--pipeline P]\n"
                   "Each client k=1..K creates cell T-k, then updates its code to T-k-i for i=1..N with up\n"
                   "to P requests in flight, printing 'ack T-k i REVISION' per acknowledged update.\n"
                   "Defaults: K=1, N=100, T=stress, P=1.\n"
                   "Exit: 0 done, 1 daemon error, 2 usage/other failure, 3 connection failed or lost.\n");
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' },
                { "user", required_argument, NULL, 'u' },
                { "notebook", required_argument, NULL, 'n' },
                { "clients", required_argument, NULL, 'k' },
                { "writes", required_argument, NULL, 'w' },
                { "tag", required_argument, NULL, 't' },
                { "pipeline", required_argument, NULL, 'p' },
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        Options o = { .tag = "stress", .clients = 1, .writes = 100, .pipeline = 1 };
        bool saw_rpc = false, saw_transport = false, saw_other = false;
        pid_t parent = getpid();
        int c;

        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                int r = 0;

                switch (c) {
                case 's':
                        o.socket_path = optarg;
                        break;
                case 'u':
                        o.user = optarg;
                        break;
                case 'n':
                        o.notebook = optarg;
                        break;
                case 't':
                        o.tag = optarg;
                        break;
                case 'k':
                        r = parse_count(optarg, 1, &o.clients);
                        break;
                case 'w':
                        r = parse_count(optarg, 0, &o.writes);
                        break;
                case 'p':
                        r = parse_count(optarg, 1, &o.pipeline);
                        break;
                case 'h':
                        usage(stdout);
                        return EXIT_DONE;
                default:
                        usage(stderr);
                        return EXIT_FAILURE_;
                }
                if (r < 0) {
                        fprintf(stderr, "nbstress: bad number '%s'\n", optarg);
                        return EXIT_FAILURE_;
                }
        }
        if (optind != argc || !o.socket_path || !o.notebook || strlen(o.tag) > 100) {
                usage(stderr);
                return EXIT_FAILURE_;
        }
        /* A write to a closed stdout must fail with EPIPE, not kill a client silently. */
        signal(SIGPIPE, SIG_IGN);

        for (long k = 1; k <= o.clients; k++) {
                pid_t pid = fork();

                if (pid < 0) {
                        fprintf(stderr, "nbstress: fork: %s\n", strerror(errno));
                        saw_other = true;
                        break;
                }
                if (pid == 0) {
                        /* Do not outlive a parent that the test killed. */
                        prctl(PR_SET_PDEATHSIG, SIGKILL);
                        if (getppid() != parent)
                                _exit(EXIT_FAILURE_);
                        _exit(run_client(&o, k));
                }
        }
        for (;;) {
                int st;
                pid_t pid = wait(&st);

                if (pid < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (WIFEXITED(st) && WEXITSTATUS(st) == EXIT_DONE)
                        continue;
                if (WIFEXITED(st) && WEXITSTATUS(st) == EXIT_RPC_ERROR)
                        saw_rpc = true;
                else if (WIFEXITED(st) && WEXITSTATUS(st) == EXIT_TRANSPORT)
                        saw_transport = true;
                else
                        saw_other = true;
        }
        return saw_rpc         ? EXIT_RPC_ERROR
               : saw_transport ? EXIT_TRANSPORT
               : saw_other     ? EXIT_FAILURE_
                               : EXIT_DONE;
}
