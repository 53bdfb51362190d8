/* The CPU reference kernels: plain C loops (OpenBLAS for GEMM). */
#ifndef LOOM_CPU_KERNELS_H
#define LOOM_CPU_KERNELS_H

#include "../../core/backend.h"

/* Runs one node; data pointers are resolved by the caller. */
void loom_cpu_exec(const loom_exec_node *x, void *out, void *const *in, const loom_run_args *args);

#endif
