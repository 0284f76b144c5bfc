/* SPDX-License-Identifier: MIT */
/* Runs each input as a request line through rpc_handle() against a real store, inside a
 * transaction that is rolled back, and checks that the reply is one well-formed JSON-RPC
 * response line (or none, for a notification) and that the store stays intact. */

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz.h"
#include "model.h"
#include "rpc.h"
#include "store.h"

static Store *store;
static Rpc rpc;
static RpcPeer peer = { .uid = 0, .privileged = true, .default_user = "fuzz" };
static unsigned long n_inputs, n_lines, n_results;

/* How deep the inputs got: a fuzz run that never gets past the parser proves little. */
static void report(void)
{
        char p[96];

        store = store_free(store);
        rpc_peer_done(&peer);
        for (const char *const *sfx = (const char *const[]){ "", "-wal", "-shm", NULL }; *sfx; sfx++) {
                snprintf(p, sizeof(p), "%s%s", rpc.db_path, *sfx);
                (void)unlink(p);
        }
        (void)rmdir(rpc.state_dir);
        fprintf(stderr, "fuzz-rpc: %lu inputs, %lu single lines, %lu successful requests\n", n_inputs,
                n_lines, n_results);
}

static void setup(void)
{
        static char dir[] = "/tmp/nb-fuzz-rpc-XXXXXX", path[64];
        char err[256];
        bool provisioned;

        fuzz_check(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/fuzz.db", dir);
        /* Durability does not matter here; speed does. */
        fuzz_check(store_open(path, false, &store, err, sizeof(err)) == 0);
        fuzz_check(store_begin(store) == 0);
        fuzz_check(store_provision(store, "fuzz", &provisioned) == 0);
        fuzz_check(store_commit(store) == 0);
        rpc = (Rpc){ .store = store, .state_dir = dir, .db_path = path };
        atexit(report);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_free_ char *line = NULL;
        RpcReply reply;
        cJSON *msg;

        if (!store)
                setup();
        /* The server hands rpc one line at a time, NUL-terminated, without its newline. */
        line = malloc(size + 1);
        fuzz_check(line);
        memcpy(line, data, size);
        line[size] = 0;
        n_inputs++;
        if (memchr(line, '\n', size))
                return 0;
        n_lines++;

        fuzz_check(store_begin(store) == 0);
        fuzz_check(store_savepoint(store) == 0);
        fuzz_check(rpc_handle(&rpc, &peer, line, size, &reply) == 0);
        /* As the server does: watches accumulate on the connection, up to the limit. */
        if (reply.watch)
                fuzz_check(rpc_peer_apply_watch(&peer, reply.watch) == 0 && peer.n_watches <= MAX_WATCHES);
        fuzz_check((reply.failed ? store_rollback_to(store) : store_release(store)) == 0);
        fuzz_check(store_rollback(store) == 0);

        if (reply.text) {
                size_t n = strlen(reply.text);

                fuzz_check(n > 1 && reply.text[n - 1] == '\n');
                fuzz_check(!memchr(reply.text, '\n', n - 1));
                msg = cJSON_Parse(reply.text);
                fuzz_check(cJSON_IsObject(msg));
                fuzz_check(cJSON_GetObjectItem(msg, "id") != NULL);
                fuzz_check(!!cJSON_GetObjectItem(msg, "result") != !!cJSON_GetObjectItem(msg, "error"));
                if (cJSON_GetObjectItem(msg, "error"))
                        fuzz_check(reply.failed);
                else
                        n_results++;
                cJSON_Delete(msg);
        }
        rpc_reply_done(&reply);
        return 0;
}
