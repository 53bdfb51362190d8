/* loom train --distributed mpi: the processes of a job as the
 * loom_collective the library reduces gradients through. dist_mpi.c is
 * built when meson finds MPI (-Dmpi=auto), dist_none.c otherwise. */
#ifndef LOOM_CLI_DIST_H
#define LOOM_CLI_DIST_H

#include "loom.h"

typedef struct cli_dist cli_dist;

/* 1 when this loom was built with MPI. */
int cli_dist_available(void);
/* Joins the job (MPI_Init, errors returned rather than fatal); every
 * nonblocking request of the collective gives up after timeout_s seconds
 * without progress and names the ranks that died or did not answer.
 * ctx receives the messages. 0, or 1 after printing why. */
int cli_dist_start(loom_ctx *ctx, double timeout_s, cli_dist **out);
const loom_collective *cli_dist_collective(cli_dist *d);
/* Leaves the job: MPI_Finalize after a run that went well; after a
 * failure (a rank died, a timeout) MPI_Abort, so that no process of the
 * job waits for this one. NULL is fine. */
void cli_dist_stop(cli_dist *d, int failed);

#endif
