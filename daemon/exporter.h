/* SPDX-License-Identifier: MIT */
#pragma once

/* The daemon's metrics: every family rendered from the counts the modules keep (rpc, server, the
 * sync engine, the DynamoDB client), and the optional HTTP listener ([metrics] listen) that serves
 * them to Prometheus on GET /metrics. See doc/protocol.md, "Metrics". */

#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "metrics.h"
#include "rpc.h"
#include "sync.h"

typedef struct ExporterSources {
        Rpc *rpc;
        Sync *sync;                   /* NULL: local-only */
        uint64_t start_realtime_usec; /* when the daemon started */
} ExporterSources;

/* The whole text in the given format. 0 or -ENOMEM. */
int exporter_render(const ExporterSources *src, MetricsFormat format, char **ret, size_t *ret_len);

typedef int (*ExporterRenderFunc)(void *userdata, MetricsFormat format, char **ret, size_t *ret_len);

typedef struct Exporter Exporter;

/* Listens on addr (TCP) and serves the text of render on GET /metrics, on the loop, without
 * blocking it: bounded request heads, a few connections at a time, each given a few seconds for
 * its whole exchange. */
int exporter_new(sd_event *event, const struct sockaddr *addr, socklen_t addr_len, ExporterRenderFunc render,
                 void *userdata, Exporter **ret);
Exporter *exporter_free(Exporter *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(Exporter *, exporter_free)
