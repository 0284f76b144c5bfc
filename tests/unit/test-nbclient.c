/* SPDX-License-Identifier: MIT */

/* libnbclient against scripted fake servers: each runs in a forked child on one end of a
 * socketpair (or on a temporary listening socket) and plays one behaviour of the daemon, good or
 * bad. */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nbclient.h"
#include "tap.h"
#include "util.h"

typedef void (*ServerFn)(int fd);

/* ---------------------------------------------------------------------------------------------
 * Server side helpers (run in the child) */

static void srv_write(int fd, const char *p, size_t n)
{
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        _exit(2);
                p += k;
                n -= (size_t)k;
        }
}

static void srv_puts(int fd, const char *s)
{
        srv_write(fd, s, strlen(s));
}

/* Reads one request line and returns it parsed (NULL at EOF). */
static cJSON *srv_read_request(FILE *f)
{
        char *line = NULL;
        size_t cap = 0;
        ssize_t n = getline(&line, &cap, f);
        cJSON *req;

        if (n <= 0) {
                free(line);
                return NULL;
        }
        req = cJSON_Parse(line);
        free(line);
        if (!req)
                _exit(3);
        return req;
}

static double srv_id(const cJSON *req)
{
        return cJSON_GetObjectItem(req, "id")->valuedouble;
}

/* {"jsonrpc":"2.0","id":ID,"result":{"method":M,"params":P}} */
static char *srv_echo_reply(const cJSON *req)
{
        cJSON *rep = cJSON_CreateObject(), *res = cJSON_CreateObject();
        const cJSON *params = cJSON_GetObjectItem(req, "params");
        char *s, *line;

        cJSON_AddStringToObject(rep, "jsonrpc", "2.0");
        cJSON_AddNumberToObject(rep, "id", srv_id(req));
        cJSON_AddStringToObject(res, "method", cJSON_GetObjectItem(req, "method")->valuestring);
        if (params)
                cJSON_AddItemToObject(res, "params", cJSON_Duplicate(params, true));
        cJSON_AddItemToObject(rep, "result", res);
        s = cJSON_PrintUnformatted(rep);
        cJSON_Delete(rep);
        if (asprintf(&line, "%s\n", s) < 0)
                _exit(4);
        free(s);
        return line;
}

static void srv_echo(int fd)
{
        FILE *f = fdopen(dup(fd), "r");
        cJSON *req;

        while ((req = srv_read_request(f))) {
                char *line = srv_echo_reply(req);
                srv_puts(fd, line);
                free(line);
                cJSON_Delete(req);
        }
        fclose(f);
}

/* Forks a child that runs fn on one end of a socketpair; returns a client on the other end. */
static NbClient *server_start(ServerFn fn, pid_t *ret_pid)
{
        int sv[2];
        NbClient *c = NULL;
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
                return NULL;
        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return NULL;
        if (pid == 0) {
                close(sv[0]);
                fn(sv[1]);
                close(sv[1]);
                _exit(0);
        }
        close(sv[1]);
        if (nb_client_new_from_fd(sv[0], &c) < 0)
                return NULL;
        *ret_pid = pid;
        return c;
}

static int server_wait(pid_t pid)
{
        int st;

        if (waitpid(pid, &st, 0) < 0)
                return -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static cJSON *params_with(const char *key, const char *value)
{
        cJSON *p = cJSON_CreateObject();

        cJSON_AddStringToObject(p, key, value);
        return p;
}

/* ---------------------------------------------------------------------------------------------
 * Tests */

static void test_connect_and_call(void)
{
        char dir[] = "/tmp/test-nbclient-XXXXXX", path[sizeof(((struct sockaddr_un *)0)->sun_path)],
             lpath[160];
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        NbClient *c = NULL;
        cJSON *res = NULL;
        NbError e = NB_ERROR_INIT;
        int lfd, r;
        pid_t pid;

        if (!mkdtemp(dir)) {
                ok(0, "mkdtemp");
                return;
        }
        snprintf(path, sizeof(path), "%s/nb.sock", dir);

        is_int(nb_client_connect(path, &c), -ENOENT, "connect to a missing socket: -ENOENT");
        ok(c == NULL, "no client after a failed connect");

        memcpy(sa.sun_path, path, sizeof(path));
        lfd = socket(AF_UNIX, SOCK_STREAM, 0);
        ok(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lfd, 4) == 0, "listen");
        fflush(stdout);
        pid = fork();
        if (pid == 0) {
                int fd = accept(lfd, NULL, NULL);
                if (fd < 0)
                        _exit(1);
                srv_echo(fd);
                _exit(0);
        }
        close(lfd);

        r = nb_client_connect(path, &c);
        is_int(r, 0, "connect to a listening socket");
        if (r == 0) {
                r = nb_client_call(c, "notebook.get", params_with("notebook_id", "demo-alice"), &res, &e);
                is_int(r, 0, "call succeeds");
                is_str(cJSON_GetStringValue(cJSON_GetObjectItem(res, "method")), "notebook.get",
                       "request carried the method");
                is_str(cJSON_GetStringValue(
                               cJSON_GetObjectItem(cJSON_GetObjectItem(res, "params"), "notebook_id")),
                       "demo-alice", "request carried the params");
                cJSON_Delete(res);
                res = NULL;

                r = nb_client_call(c, "daemon.status", NULL, &res, NULL);
                is_int(r, 0, "call without params succeeds");
                ok(res && !cJSON_GetObjectItem(res, "params"), "no params member sent for NULL params");
                cJSON_Delete(res);
                res = NULL;

                is_int(nb_client_call(c, "x", cJSON_CreateArray(), NULL, NULL), -EINVAL,
                       "params that are not an object are refused");
                is_int(nb_client_call(c, "daemon.status", NULL, NULL, NULL), 0,
                       "connection still good after a refused call");
                is_int(nb_client_recv(c, NULL, NULL, NULL), -EALREADY,
                       "recv with nothing in flight: -EALREADY");
        }
        c = nb_client_free(c);
        is_int(server_wait(pid), 0, "echo server exited cleanly");
        unlink(path);
        rmdir(dir);

        snprintf(lpath, sizeof(lpath), "/tmp/%0120d", 0);
        is_int(nb_client_connect(lpath, &c), -ENAMETOOLONG, "socket path too long: -ENAMETOOLONG");
        nb_error_done(&e);
}

static void srv_errors(int fd)
{
        FILE *f = fdopen(dup(fd), "r");
        cJSON *req;
        char buf[512];

        req = srv_read_request(f);
        snprintf(buf, sizeof(buf),
                 "{\"jsonrpc\":\"2.0\",\"id\":%.0f,\"error\":{\"code\":-32010,\"message\":\"no such "
                 "notebook\","
                 "\"data\":{\"notebook_id\":\"nope\"}}}\n",
                 srv_id(req));
        srv_puts(fd, buf);
        cJSON_Delete(req);

        req = srv_read_request(f);
        snprintf(buf, sizeof(buf),
                 "{\"jsonrpc\":\"2.0\",\"id\":%.0f,\"error\":{\"code\":-32011,\"message\":\"revision "
                 "conflict\","
                 "\"data\":{\"current_revision\":7}}}\r\n",
                 srv_id(req));
        srv_puts(fd, buf);
        cJSON_Delete(req);

        /* A line error the daemon cannot tie to a request comes with a null id. */
        req = srv_read_request(f);
        srv_puts(fd, "\n{\"jsonrpc\":\"2.0\",\"method\":\"watch.changed\",\"params\":{}}\n"
                     "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32000,\"message\":\"line too "
                     "long\"}}\n");
        cJSON_Delete(req);

        req = srv_read_request(f);
        snprintf(buf, sizeof(buf), "{\"jsonrpc\":\"2.0\",\"id\":%.0f,\"result\":{\"fine\":true}}\n",
                 srv_id(req));
        srv_puts(fd, buf);
        cJSON_Delete(req);
        fclose(f);
}

static void test_errors(void)
{
        NbError e = NB_ERROR_INIT;
        cJSON *res = NULL;
        NbClient *c;
        pid_t pid;
        int r;

        c = server_start(srv_errors, &pid);
        ok(c != NULL, "errors server started");
        if (!c)
                return;
        r = nb_client_call(c, "notebook.get", params_with("notebook_id", "nope"), &res, &e);
        is_int(r, -EREMOTEIO, "JSON-RPC error: -EREMOTEIO");
        is_int(e.code, NB_ERROR_NOT_FOUND, "error code filled");
        is_str(e.message, "no such notebook", "error message filled");
        is_str(cJSON_GetStringValue(cJSON_GetObjectItem(e.data, "notebook_id")), "nope",
               "error data filled");
        ok(res == NULL, "no result on error");

        r = nb_client_call(c, "notebook.update", params_with("notebook_id", "x"), &res, &e);
        is_int(r, -EREMOTEIO, "second error (CRLF line) reported");
        is_int(e.code, NB_ERROR_CONFLICT, "error replaced in the same NbError");
        is_int((int)cJSON_GetObjectItem(e.data, "current_revision")->valuedouble, 7,
               "current_revision in data");

        r = nb_client_call(c, "x", NULL, &res, &e);
        is_int(r, -EREMOTEIO, "null-id error, after a blank line and a notification, is the caller's");
        is_int(e.code, NB_ERROR_LINE_TOO_LONG, "its code");
        ok(e.data == NULL, "no data");

        r = nb_client_call(c, "y", NULL, &res, &e);
        is_int(r, 0, "connection still usable after errors");
        ok(cJSON_IsTrue(cJSON_GetObjectItem(res, "fine")), "result read");
        cJSON_Delete(res);
        nb_error_done(&e);
        nb_error_done(&e);
        nb_client_free(c);
        is_int(server_wait(pid), 0, "errors server exited cleanly");
}

/* Reads 2 requests; answers the first with an error that has a null id (as the daemon does for a
 * line too long), then the second. Then answers a third request with an id never sent. */
static void srv_nullid(int fd)
{
        FILE *f = fdopen(dup(fd), "r");
        cJSON *a = srv_read_request(f), *b = srv_read_request(f), *c;
        char buf[256];

        snprintf(buf, sizeof(buf),
                 "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32000,\"message\":\"line too "
                 "long\"}}\n{\"jsonrpc\":\"2.0\",\"id\":%.0f,\"result\":{}}\n",
                 srv_id(b));
        srv_puts(fd, buf);
        c = srv_read_request(f);
        srv_puts(fd, "{\"jsonrpc\":\"2.0\",\"id\":999,\"result\":{}}\n");
        cJSON_Delete(a);
        cJSON_Delete(b);
        cJSON_Delete(c);
        fclose(f);
}

static void test_null_id(void)
{
        NbError e = NB_ERROR_INIT;
        uint64_t a = 0, b = 0, id = 0;
        NbClient *c;
        pid_t pid;

        c = server_start(srv_nullid, &pid);
        ok(c != NULL, "null-id server started");
        if (!c)
                return;
        ok(nb_client_send(c, "x", NULL, &a) == 0 && nb_client_send(c, "y", NULL, &b) == 0,
           "two requests in flight");
        is_int(nb_client_recv(c, &id, NULL, &e), -EREMOTEIO, "an error with a null id");
        ok(id == a, "answers the oldest request in flight");
        is_int(e.code, NB_ERROR_LINE_TOO_LONG, "with its code");
        is_int(nb_client_recv(c, &id, NULL, &e), 0, "then the other reply");
        ok(id == b, "for the second request");
        is_int(nb_client_call(c, "z", NULL, NULL, &e), -EPROTO, "a reply to a request never sent: -EPROTO");
        nb_error_done(&e);
        nb_client_free(c);
        is_int(server_wait(pid), 0, "null-id server exited cleanly");
}

/* Reads 5 requests, then answers them out of order: 2, 5, 4, 1, 3. */
static void srv_shuffle(int fd)
{
        static const int order[] = { 1, 4, 3, 0, 2 };
        FILE *f = fdopen(dup(fd), "r");
        cJSON *reqs[5];

        for (int i = 0; i < 5; i++)
                if (!(reqs[i] = srv_read_request(f)))
                        _exit(5);
        for (int i = 0; i < 5; i++) {
                char *line = srv_echo_reply(reqs[order[i]]);
                srv_puts(fd, line);
                free(line);
        }
        for (int i = 0; i < 5; i++)
                cJSON_Delete(reqs[i]);
        fclose(f);
}

static void test_pipeline(void)
{
        static const int recv_order[] = { 1, 3, 0, 2 }; /* indexes into ids[] */
        uint64_t ids[4], id;
        cJSON *res = NULL;
        NbClient *c;
        pid_t pid;
        int r, good = 1;

        c = server_start(srv_shuffle, &pid);
        ok(c != NULL, "shuffle server started");
        if (!c)
                return;
        for (int i = 0; i < 4; i++) {
                char v[16];

                snprintf(v, sizeof(v), "v%d", i);
                r = nb_client_send(c, "m", params_with("v", v), &ids[i]);
                good = good && r == 0;
        }
        ok(good, "4 requests sent without waiting");
        ok(ids[0] == 1 && ids[1] == 2 && ids[2] == 3 && ids[3] == 4, "ids 1..4");
        is_int(nb_client_in_flight(c), 4, "4 in flight");

        /* The fifth, a call, reads the reply to request 2 first and keeps it for recv. */
        r = nb_client_call(c, "last", NULL, &res, NULL);
        is_int(r, 0, "call with others in flight");
        is_str(cJSON_GetStringValue(cJSON_GetObjectItem(res, "method")), "last", "call got its own reply");
        cJSON_Delete(res);
        is_int(nb_client_in_flight(c), 3, "3 replies still unread");

        for (int k = 0; k < 4; k++) {
                int i = recv_order[k];
                char v[16];

                snprintf(v, sizeof(v), "v%d", i);
                res = NULL;
                r = nb_client_recv(c, &id, &res, NULL);
                good = r == 0 && id == ids[i] &&
                       streq_ptr(cJSON_GetStringValue(
                                         cJSON_GetObjectItem(cJSON_GetObjectItem(res, "params"), "v")),
                                 v);
                ok(good, "reply %d (of request %" PRIu64 ") matches its request by id", k, ids[i]);
                cJSON_Delete(res);
        }
        is_int(nb_client_in_flight(c), 0, "nothing in flight");
        is_int(nb_client_recv(c, &id, NULL, NULL), -EALREADY, "recv with nothing left: -EALREADY");
        nb_client_free(c);
        is_int(server_wait(pid), 0, "shuffle server exited cleanly");
}

/* Answers with a ~1 MiB result written in pieces of every size, with pauses. */
static void srv_split(int fd)
{
        FILE *f = fdopen(dup(fd), "r");
        cJSON *req = srv_read_request(f);
        char *big = malloc(1024 * 1024 + 1), head[128];
        size_t n, off = 0, step = 1;

        memset(big, 'x', 1024 * 1024);
        big[1024 * 1024] = 0;
        snprintf(head, sizeof(head), "{\"jsonrpc\":\"2.0\",\"id\":%.0f,\"result\":{\"code\":\"",
                 srv_id(req));
        cJSON_Delete(req);
        for (const char *p = head; *p; p++) {
                srv_write(fd, p, 1);
                usleep(200);
        }
        n = strlen(big);
        while (off < n) {
                size_t k = step < n - off ? step : n - off;
                srv_write(fd, big + off, k);
                off += k;
                step = step * 3 + 1;
                usleep(100);
        }
        srv_puts(fd, "\"}}");
        usleep(1000);
        srv_puts(fd, "\n");
        free(big);
        fclose(f);
}

static void test_split(void)
{
        cJSON *res = NULL;
        NbClient *c;
        pid_t pid;
        const char *code;

        c = server_start(srv_split, &pid);
        ok(c != NULL, "split server started");
        if (!c)
                return;
        is_int(nb_client_call(c, "m", NULL, &res, NULL), 0, "reply split over many writes is read");
        code = cJSON_GetStringValue(cJSON_GetObjectItem(res, "code"));
        ok(code && strlen(code) == 1024 * 1024 && code[0] == 'x', "whole 1 MiB value received");
        cJSON_Delete(res);
        nb_client_free(c);
        is_int(server_wait(pid), 0, "split server exited cleanly");
}

/* Replies 4 KiB lines (and one exactly at the limit first). */
static void srv_oversize(int fd)
{
        FILE *f = fdopen(dup(fd), "r");
        cJSON *req = srv_read_request(f);
        char line[8192], pad[8192];
        int n;

        n = snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":%.0f,\"result\":{\"p\":\"",
                     srv_id(req));
        /* This line is exactly 1024 bytes before its newline. */
        memset(pad, 'a', 1024 - (size_t)n - 3);
        pad[1024 - n - 3] = 0;
        srv_puts(fd, line);
        srv_puts(fd, pad);
        srv_puts(fd, "\"}}\n");
        cJSON_Delete(req);

        req = srv_read_request(f);
        snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":%.0f,\"result\":{\"p\":\"", srv_id(req));
        srv_puts(fd, line);
        memset(pad, 'b', 4096);
        pad[4096] = 0;
        srv_puts(fd, pad);
        srv_puts(fd, "\"}}\n");
        cJSON_Delete(req);
        fclose(f);
}

static void test_oversize(void)
{
        cJSON *res = NULL;
        NbClient *c;
        pid_t pid;

        c = server_start(srv_oversize, &pid);
        ok(c != NULL, "oversize server started");
        if (!c)
                return;
        nb_client_set_max_reply(c, 1024);
        is_int(nb_client_call(c, "m", NULL, &res, NULL), 0, "reply exactly at the limit accepted");
        cJSON_Delete(res);
        res = NULL;
        is_int(nb_client_call(c, "m", NULL, &res, NULL), -EMSGSIZE,
               "reply over the limit refused: -EMSGSIZE");
        ok(res == NULL, "no result");
        is_int(nb_client_call(c, "m", NULL, &res, NULL), -ENOTCONN, "connection dead afterwards: -ENOTCONN");
        nb_client_free(c);
        server_wait(pid);
}

static void srv_hangup_mid_reply(int fd)
{
        FILE *f = fdopen(dup(fd), "r");
        cJSON *req = srv_read_request(f);
        char line[256];

        snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":%.0f,\"result\":{\"no", srv_id(req));
        srv_puts(fd, line);
        cJSON_Delete(req);
        fclose(f);
}

static void srv_hangup_at_once(int fd)
{
        FILE *f = fdopen(dup(fd), "r");
        cJSON *req = srv_read_request(f);

        cJSON_Delete(req);
        fclose(f);
}

static void srv_garbage(int fd)
{
        FILE *f = fdopen(dup(fd), "r");
        cJSON *req = srv_read_request(f);

        srv_puts(fd, "this is not json\n");
        cJSON_Delete(req);
        req = srv_read_request(f);
        cJSON_Delete(req);
        fclose(f);
}

static void srv_silent(int fd)
{
        char buf[4096];

        /* Reads everything, answers nothing, until the client goes away. */
        while (read(fd, buf, sizeof(buf)) > 0)
                ;
}

static void srv_close_now(int fd)
{
}

static void test_transport_errors(void)
{
        cJSON *res = NULL;
        NbClient *c;
        pid_t pid;

        c = server_start(srv_hangup_mid_reply, &pid);
        is_int(nb_client_call(c, "m", NULL, &res, NULL), -ECONNRESET, "hang-up mid-reply: -ECONNRESET");
        is_int(nb_client_send(c, "m", NULL, NULL), -ENOTCONN, "later send: -ENOTCONN");
        is_int(nb_client_recv(c, NULL, NULL, NULL), -ENOTCONN, "later recv: -ENOTCONN");
        nb_client_free(c);
        server_wait(pid);

        c = server_start(srv_hangup_at_once, &pid);
        is_int(nb_client_call(c, "m", NULL, &res, NULL), -ECONNRESET,
               "hang-up before the reply: -ECONNRESET");
        nb_client_free(c);
        server_wait(pid);

        c = server_start(srv_garbage, &pid);
        is_int(nb_client_call(c, "m", NULL, &res, NULL), -EPROTO, "reply that is not JSON: -EPROTO");
        nb_client_free(c);
        server_wait(pid);

        c = server_start(srv_silent, &pid);
        nb_client_set_timeout(c, 100);
        is_int(nb_client_call(c, "m", NULL, &res, NULL), -ETIMEDOUT,
               "no reply within the timeout: -ETIMEDOUT");
        nb_client_free(c);
        server_wait(pid);

        /* Writing to a peer that is gone must give an error, not SIGPIPE. */
        c = server_start(srv_close_now, &pid);
        server_wait(pid);
        {
                cJSON *p = cJSON_CreateObject();
                char *big = malloc(4 * 1024 * 1024);
                int r;

                memset(big, 'z', 4 * 1024 * 1024 - 1);
                big[4 * 1024 * 1024 - 1] = 0;
                cJSON_AddStringToObject(p, "code", big);
                free(big);
                r = nb_client_call(c, "m", p, &res, NULL);
                ok(r == -ECONNRESET || r == -EPIPE, "send to a closed peer: error, no SIGPIPE (got %d)", r);
        }
        nb_client_free(c);
        ok(res == NULL, "no result after transport errors");
}

/* Reads one request at a time and answers each with a 64 KiB reply before reading the next: a
 * client that wrote its whole pipeline before reading would deadlock with it. */
static void srv_slow_reader(int fd)
{
        FILE *f = fdopen(dup(fd), "r");
        cJSON *req;
        static char pad[65536];

        memset(pad, 'q', sizeof(pad) - 1);
        while ((req = srv_read_request(f))) {
                char head[128];

                snprintf(head, sizeof(head), "{\"jsonrpc\":\"2.0\",\"id\":%.0f,\"result\":{\"pad\":\"",
                         srv_id(req));
                srv_puts(fd, head);
                srv_puts(fd, pad);
                srv_puts(fd, "\"}}\n");
                cJSON_Delete(req);
        }
        fclose(f);
}

static void test_deep_pipeline(void)
{
        static char code[65536];
        NbClient *c;
        pid_t pid;
        int good = 1, n = 0;
        uint64_t id, expect = 1;

        memset(code, 'c', sizeof(code) - 1);
        c = server_start(srv_slow_reader, &pid);
        nb_client_set_timeout(c, 20000);
        for (int i = 0; i < 200 && good; i++)
                good = nb_client_send(c, "m", params_with("code", code), NULL) == 0;
        ok(good, "200 requests of 64 KiB pipelined against a server answering 64 KiB each");
        while (good && nb_client_in_flight(c) > 0) {
                cJSON *res = NULL;

                good = nb_client_recv(c, &id, &res, NULL) == 0 && id == expect++;
                cJSON_Delete(res);
                n++;
        }
        ok(good && n == 200, "all 200 replies received in order (%d)", n);
        nb_client_free(c);
        server_wait(pid);
}

static void test_default_path(void)
{
        char *p;

        setenv("NOTEBOOKD_SOCKET", "/tmp/elsewhere.sock", 1);
        p = nb_default_socket_path();
        is_str(p, "/tmp/elsewhere.sock", "NOTEBOOKD_SOCKET overrides the default");
        free(p);

        unsetenv("NOTEBOOKD_SOCKET");
        setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
        p = nb_default_socket_path();
        if (geteuid() == 0)
                is_str(p, "/run/notebookd/notebookd.sock", "root: the system socket");
        else
                is_str(p, "/run/user/4242/notebookd/notebookd.sock", "user: under XDG_RUNTIME_DIR");
        free(p);

        unsetenv("XDG_RUNTIME_DIR");
        p = nb_default_socket_path();
        if (geteuid() == 0)
                is_str(p, "/run/notebookd/notebookd.sock",
                       "root without XDG_RUNTIME_DIR: the system socket");
        else {
                char want[128];

                snprintf(want, sizeof(want), "/run/user/%u/notebookd/notebookd.sock", (unsigned)geteuid());
                is_str(p, want, "user without XDG_RUNTIME_DIR: /run/user/UID");
        }
        free(p);
}

int main(void)
{
        /* The library must never raise SIGPIPE: keep the default action so a slip kills the test. */
        signal(SIGPIPE, SIG_DFL);

        test_connect_and_call();
        test_errors();
        test_null_id();
        test_pipeline();
        test_split();
        test_oversize();
        test_transport_errors();
        test_deep_pipeline();
        test_default_path();
        return tap_done();
}
