/* loom train --distributed without MPI in the build. */
#include "dist.h"

#include <stdio.h>

int cli_dist_available(void)
{
    return 0;
}

int cli_dist_start(loom_ctx *ctx, double timeout_s, cli_dist **out)
{
    (void)ctx;
    (void)timeout_s;
    *out = NULL;
    fprintf(stderr, "loom train: --distributed mpi: this loom was built without MPI (install libopenmpi-dev and "
                    "reconfigure with -Dmpi=enabled)\n");
    return 1;
}

const loom_collective *cli_dist_collective(cli_dist *d)
{
    (void)d;
    return NULL;
}

void cli_dist_stop(cli_dist *d, int failed)
{
    (void)d;
    (void)failed;
}
