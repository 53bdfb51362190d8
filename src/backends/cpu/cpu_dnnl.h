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

/* Takes the lock over the engine, the stream and the primitive caches and
 * gives the engine and stream; 0 (unlocked) when they cannot be made. */
int loom_cpu_dnnl_enter(dnnl_engine_t *eng, dnnl_stream_t *str);
void loom_cpu_dnnl_leave(void);

/* C[r, c] = sum_k A[r, k] B[c, k] in s8 x s8 -> s32 (cpu_dnnl.c). */
int loom_cpu_dnnl_qgemm(const int8_t *a, const int8_t *b, int64_t rows, int64_t cols, int64_t k, int32_t *c);
/* The f32 convolution of code (LOOM_CONV_FWD: y = conv(x, w) + bias;
 * BWD_DATA: dx = conv_transpose(dy, w); BWD_FILTER: dw from dy and x)
 * over NCHW tensors, in[] as the conv node's (cpu_dnnl_conv.c). */
int loom_cpu_dnnl_conv(int code, const loom_conv_geom *g, const float *in0, const float *in1, const float *bias,
                       float *out);
#endif

#endif
