/* The CPU reference kernels: plain C loops (OpenBLAS for GEMM), one per
 * op family, computing in f32 (half-precision tensors are widened before
 * and narrowed after, cpu_backend.c). */
#ifndef LOOM_CPU_KERNELS_H
#define LOOM_CPU_KERNELS_H

#include "../../core/backend.h"

/* Element-wise bodies (cpu_ew.c), indexed by op. */
typedef struct cpu_unary_body {
    void (*f)(float *y, const float *x, int64_t n, float p1, float p2);
    /* dy * f'(v), v the input or the output as the op's table entry says */
    void (*d)(float *y, const float *dy, const float *v, int64_t n, float p1, float p2);
} cpu_unary_body;

typedef struct cpu_binary_body {
    float (*f)(float a, float b);
    float (*da)(float a, float b); /* d f / d a; NULL when composed or not differentiable */
    float (*db)(float a, float b);
} cpu_binary_body;

extern const cpu_unary_body cpu_unary[LOOM_OP_COUNT];
extern const cpu_binary_body cpu_binary[LOOM_OP_COUNT];

/* One node: out and in are f32 views of every float tensor (i32 tensors as
 * they are); slot is the node's run slot or NULL. */
typedef void (*cpu_kernel)(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot);

/* The sequence ops (cpu_seq.c, cpu_attention.c). */
void loom_cpu_bmm(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot);
void loom_cpu_norm(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot);
void loom_cpu_norm_grad(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot);
void loom_cpu_take(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot);
void loom_cpu_scatter(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot);
void loom_cpu_rope(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot);
void loom_cpu_attention(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot);

/* The kernel of each family; NULL: the CPU has none. */
extern const cpu_kernel cpu_kernels[LOOM_FAM_COUNT];

/* Where a tensor's data lies (for the values a fused node writes besides
 * its output, exec node.also). */
void *loom_cpu_tensor_data(const loom_exec_tensor *t);

/* Convolutional networks' kernels (cpu_conv.c). */
void cpu_k_conv(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot);
void cpu_k_pool(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot);
void cpu_k_pool_grad(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot);
void cpu_k_norm(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot);
void cpu_k_norm_update(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot);
void cpu_k_mask_update(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot);
void cpu_k_window(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot);
void cpu_k_concat(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot);
/* int8 inference (cpu_quant.c). */
void loom_cpu_quant(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot);
void loom_cpu_qmatmul(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot);
void loom_cpu_qconv(const loom_exec_node *x, void *out, void *const *in, const loom_run_slot *slot);
/* The scratch of an int8 product (an int8 convolution's i8 patches, the
 * oneDNN path's i32 accumulators), counted in floats. */
size_t loom_cpu_quant_workspace_floats(const loom_exec_node *x);
/* Floats of scratch a node's kernel needs (the columns of a convolution),
 * handed to it as in[nin]; 0 for most. */
size_t cpu_workspace_floats(const loom_exec_node *x);

/* Runs fn over [0, n) in ranges, on every core when the loop has work
 * enough (work: elements it touches), else on the caller's thread
 * (cpu_parallel.c). */
typedef void (*cpu_range_fn)(void *arg, int64_t begin, int64_t end);
void cpu_parallel_for(int64_t n, int64_t work, cpu_range_fn fn, void *arg);

/* 1 if the CPU backend has a kernel for op in dtype. */
int loom_cpu_has_kernel(loom_op op, loom_dtype dt);

#endif
