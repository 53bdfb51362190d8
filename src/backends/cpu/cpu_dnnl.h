/* oneDNN on the CPU backend (meson option onednn; LOOM_HAVE_DNNL): one
 * engine and stream for the process, made on first use, and the calls the
 * kernels make through it. Each returns 1 when oneDNN did the work and 0
 * when the caller's own kernel must (no engine, a primitive it refused). */
#ifndef LOOM_CPU_DNNL_H
#define LOOM_CPU_DNNL_H

#include <stdint.h>

#include "../../core/conv_geom.h"

#ifdef LOOM_HAVE_DNNL
#include <dnnl.h>

/* oneDNN is opened on first use (dlopen) rather than linked: its OpenMP
 * runtime reads OMP_WAIT_POLICY once, when it is loaded, and its default
 * (threads spin for milliseconds after each primitive) took a core from
 * every loop that followed a convolution on a 2-core machine: CNN training
 * 1138 against 1883 samples/s passive. So it is loaded with the policy
 * passive unless the process set one or has an OpenMP runtime already.
 * The calls go through this table. */
#define LOOM_DNNL_FUNCS(X) \
    X(engine_create) \
    X(stream_create) \
    X(stream_wait) \
    X(memory_desc_init_by_tag) \
    X(memory_desc_equal) \
    X(memory_create) \
    X(memory_destroy) \
    X(memory_set_data_handle) \
    X(matmul_desc_init) \
    X(dilated_convolution_forward_desc_init) \
    X(dilated_convolution_backward_data_desc_init) \
    X(dilated_convolution_backward_weights_desc_init) \
    X(reorder_primitive_desc_create) \
    X(primitive_desc_create) \
    X(primitive_desc_destroy) \
    X(primitive_desc_query_md) \
    X(primitive_create) \
    X(primitive_destroy) \
    X(primitive_execute) \
    X(get_effective_cpu_isa)

typedef struct loom_cpu_dnnl_api {
#define LOOM_DNNL_FIELD(n) __typeof__(dnnl_##n) *n;
    LOOM_DNNL_FUNCS(LOOM_DNNL_FIELD)
#undef LOOM_DNNL_FIELD
} loom_cpu_dnnl_api;

/* Filled by loom_cpu_dnnl_enter's first call; read only after one that
 * returned 1. */
extern loom_cpu_dnnl_api loom_cpu_dnnl;

/* Takes the lock over the engine, the stream and the primitive caches and
 * gives the engine and stream; 0 (unlocked) when they cannot be made or
 * the library cannot be opened. */
int loom_cpu_dnnl_enter(dnnl_engine_t *eng, dnnl_stream_t *str);
void loom_cpu_dnnl_leave(void);
/* 1 when oneDNN is there to take work (opening it on the first call). */
int loom_cpu_dnnl_ready(void);
/* 1 when oneDNN's s8 x s8 products are exact here: the CPU has VNNI
 * (AVX512-VNNI or AVX-VNNI). Without it oneDNN 2.6 multiplies through
 * vpmaddubsw, whose 16-bit pair sums saturate: 64 products of 127 x 127
 * came out 8160, not 1032256, on an AVX2-only EPYC. The int8 products then
 * take cpu_quant.c's own kernels, which are exact. */
int loom_cpu_dnnl_int8_exact(void);

/* C[r, c] = sum_k A[r, k] B[c, k] in s8 x s8 -> s32 (cpu_dnnl.c). */
int loom_cpu_dnnl_qgemm(const int8_t *a, const int8_t *b, int64_t rows, int64_t cols, int64_t k, int32_t *c);
/* The f32 convolution of code (LOOM_CONV_FWD: y = conv(x, w) + bias;
 * BWD_DATA: dx = conv_transpose(dy, w); BWD_FILTER: dw from dy and x)
 * over NCHW tensors, in[] as the conv node's (cpu_dnnl_conv.c). */
int loom_cpu_dnnl_conv(int code, const loom_conv_geom *g, const float *in0, const float *in1, const float *bias,
                       float *out);
/* The int8 convolution's accumulators acc [N, OC, OH, OW] = sum x w over
 * an input already padded (with its zero point, as loom's int8 padding
 * is; oneDNN's is 0) to padded's geometry, which
 * loom_cpu_dnnl_qconv_padded gives from the convolution's own. */
void loom_cpu_dnnl_qconv_padded(const loom_conv_geom *g, loom_conv_geom *padded);
int loom_cpu_dnnl_qconv(const loom_conv_geom *padded, const int8_t *x, const int8_t *w, int32_t *acc);
#endif

#endif
