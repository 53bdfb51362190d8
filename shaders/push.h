/*
 * Push-constant structs of every Vulkan kernel and the per-run slot, each
 * declared once for C (core and src/backends/), GLSL (shaders/glsl) and
 * OpenCL C (shaders/opencl, which receives the run slot as a kernel
 * argument).
 *
 * Every member is a 32-bit scalar or an array of them, so the C layout and
 * the std430 layout GLSL gives a push-constant block agree member by member;
 * the _Static_asserts below pin the C sizes, and a struct must stay within
 * the 128 bytes every Vulkan device guarantees.
 */
#ifndef LOOM_PUSH_H
#define LOOM_PUSH_H

#if defined(GL_core_profile)
#define LU32 uint
#define LI32 int
#define LF32 float
#define LOOM_PUSH_BEGIN(name) struct name {
#define LOOM_PUSH_END(name) };
#elif defined(__OPENCL_VERSION__)
#define LU32 uint
#define LI32 int
#define LF32 float
#define LOOM_PUSH_BEGIN(name) typedef struct name {
#define LOOM_PUSH_END(name) } name;
#else
#include <stdint.h>
#define LU32 uint32_t
#define LI32 int32_t
#define LF32 float
#define LOOM_PUSH_BEGIN(name) typedef struct name {
#define LOOM_PUSH_END(name) } name;
#endif

/* C = op(A) op(B): element (i, k) of op(A) is at i * sam + k * sak, element
 * (k, j) of op(B) at k * sbk + j * sbn; C is dense [m, n]. With has_bias,
 * C[i, j] += bias[j] (a fused row-bias add). */
LOOM_PUSH_BEGIN(loom_pc_gemm)
    LU32 m;
    LU32 n;
    LU32 k;
    LU32 sam;
    LU32 sak;
    LU32 sbk;
    LU32 sbn;
    LU32 has_bias;
    LU32 epi;  /* LOOM_EPI_*: the activation applied to C (+ bias) */
    LU32 depi; /* LOOM_EPI_*: C = (A x B) * f'(y), y bound as the third operand */
    LF32 p1;
    LF32 p2;
LOOM_PUSH_END(loom_pc_gemm)

/* Element i of the output, as a rank-4 index (i0, i1, i2, i3) over dims
 * (d[0], d[1], d[2], d[3]), reads operand a at sum ik * sa[k] and b at
 * sum ik * sb[k] (stride 0 along a broadcast dim). dense: every operand is
 * indexed by i itself. */
LOOM_PUSH_BEGIN(loom_pc_bcast)
    LU32 n;
    LU32 dense;
    LU32 d[4];
    LU32 sa[4];
    LU32 sb[4];
LOOM_PUSH_END(loom_pc_bcast)

/* Element-wise unary ops and their gradients (and casts: n only). */
LOOM_PUSH_BEGIN(loom_pc_unary)
    LU32 n;
    LF32 p1;
    LF32 p2;
LOOM_PUSH_END(loom_pc_unary)

/* where: the output as in loom_pc_bcast, three operands. */
LOOM_PUSH_BEGIN(loom_pc_where)
    LU32 n;
    LU32 d[4];
    LU32 sc[4];
    LU32 sa[4];
    LU32 sb[4];
LOOM_PUSH_END(loom_pc_where)

/* Row-wise kernels (softmax family, cross-entropy): rows of cols elements,
 * each inner apart (row r starts at (r / inner) * cols * inner + r % inner);
 * inner is 1 for the last axis. The cross-entropy's loss (xent.comp) sums
 * rows r0 <= r < r1, onto the output where acc is set: a driver that cuts
 * long loops short (llvmpipe) gets it in several dispatches. */
LOOM_PUSH_BEGIN(loom_pc_rows)
    LU32 rows;
    LU32 cols;
    LU32 inner;
    LU32 r0;
    LU32 r1;
    LU32 acc;
LOOM_PUSH_END(loom_pc_rows)

/* out[j] = alpha * sum of the input over the reduced dims. The input is
 * rank 4 (dims d, dense strides st); r[k] is the output's dim k (1 where
 * reduced); rn the number of input elements that meet in one output. A
 * dispatch combines elements t0 <= t < t1 of them, onto the output where
 * acc is set: a driver that cuts long loops short (llvmpipe) gets a long
 * reduction in several dispatches. */
LOOM_PUSH_BEGIN(loom_pc_reduce)
    LU32 on;
    LU32 rn;
    LU32 d[4];
    LU32 r[4];
    LU32 st[4];
    LF32 alpha;
    LU32 t0;
    LU32 t1;
    LU32 acc;
LOOM_PUSH_END(loom_pc_reduce)

LOOM_PUSH_BEGIN(loom_pc_argmax)
    LU32 outer;
    LU32 n;
    LU32 inner;
LOOM_PUSH_END(loom_pc_argmax)

LOOM_PUSH_BEGIN(loom_pc_dropout)
    LU32 n;
    LU32 slot;     /* index into the run slots: h0 */
    LF32 rate;
    LF32 keep;     /* 1 / (1 - rate), computed on the host as the CPU does */
LOOM_PUSH_END(loom_pc_dropout)

/* A kernel that reads one run slot only (the loss scale). */
LOOM_PUSH_BEGIN(loom_pc_slot)
    LU32 n;
    LU32 slot;
LOOM_PUSH_END(loom_pc_slot)

#define LOOM_SUMSQ_MAX_IN 8
/* One dispatch sums the squares of up to 8 inputs; accumulate adds the
 * previous dispatch's partial result held in out[0]. */
LOOM_PUSH_BEGIN(loom_pc_sumsq)
    LU32 n[LOOM_SUMSQ_MAX_IN];
    LU32 accumulate;
LOOM_PUSH_END(loom_pc_sumsq)

/* SGD, Adam(W) and EMA updates; the per-run values come from run slot
 * `slot`. */
LOOM_PUSH_BEGIN(loom_pc_update)
    LU32 n;
    LU32 slot;
    LU32 clip;     /* the sumsq scalar is bound */
    LU32 skip_nonfinite;
    LU32 nesterov;
    LF32 clip_norm;
    LF32 beta1;
    LF32 beta2;
    LF32 eps;
    LF32 momentum;
    LF32 weight_decay;
    LF32 l1;
    LF32 l2;
    LU32 grad_rows; /* the gradient is the column sum of a [grad_rows, n] one */
    LU32 first;     /* multi-tensor: the group's first table word (n: its tensors) */
LOOM_PUSH_END(loom_pc_update)

/* A multi-tensor update's table entry, in words: element offsets of the
 * parameter, the gradient, the two moments; the tensor's size, its
 * gradient's rows (0: not a column sum); its first workgroup; the elements
 * an invocation takes at once (Vulkan's Adam: 4 where the tensor is whole
 * vec4s, else 1; 0 reads as 1). */
#define LOOM_UPDATE_ENTRY 8u

/* A custom kernel's element counts: the output's, then each input's (up to
 * LOOM_CUSTOM_MAX_INPUTS of include/loom.h). */
LOOM_PUSH_BEGIN(loom_pc_custom)
    LU32 n[9];
LOOM_PUSH_END(loom_pc_custom)

/* Convolutions as an implicit GEMM (conv_tiled.comp, conv_direct.comp):
 * the convolution X [n, c, h, w] * W [oc, cg, kh, kw] -> Y [n, oc, oh, ow]
 * in groups of cg input and ocg output channels, stride (sh, sw),
 * dilation (dh, dw), padding pt at the top and pl at the left. has_bias:
 * the node's third input is added per output channel. */
LOOM_PUSH_BEGIN(loom_pc_conv)
    LU32 n;
    LU32 c;
    LU32 h;
    LU32 w;
    LU32 oc;
    LU32 oh;
    LU32 ow;
    LU32 kh;
    LU32 kw;
    LU32 cg;
    LU32 ocg;
    LU32 sh;
    LU32 sw;
    LU32 dh;
    LU32 dw;
    LU32 pt;
    LU32 pl;
    LU32 has_bias;
    /* LOOM_CONV_BWD_FILTER on Vulkan: the rows (sample, output row) r0 <=
     * r < r1 of the sum, added onto the output with acc; a driver that
     * cuts long loops short (llvmpipe) gets the sum in several dispatches.
     * Zero where unused (OpenCL). */
    LU32 r0;
    LU32 r1;
    LU32 acc;
LOOM_PUSH_END(loom_pc_conv)

/* The OpenCL int8 convolution's output channels per work item (quant.cl;
 * 8 measured no faster than 4 on PoCL). */
#define LOOM_QCONV_CHANNELS 4

/* Pooling over planes of h x w (n x c of them) into oh x ow: windows of
 * kh x kw, stride (sh, sw), padding pt, pl; count_pad: averages divide by
 * the whole window. */
LOOM_PUSH_BEGIN(loom_pc_pool)
    LU32 planes;
    LU32 h;
    LU32 w;
    LU32 oh;
    LU32 ow;
    LU32 kh;
    LU32 kw;
    LU32 sh;
    LU32 sw;
    LU32 pt;
    LU32 pl;
    LU32 count_pad;
LOOM_PUSH_END(loom_pc_pool)

/* Normalization of x [n, c, s] by q statistics (src/core/conv_geom.h,
 * loom_norm_geom): statistic j covers `blocks` runs of `len` elements,
 * `stride` apart, from j * len; element i belongs to statistic
 * ((i / s) / cpg) % q and channel (i / s) % c. frozen: the statistics are
 * not the batch's (no terms through them in the gradient). */
LOOM_PUSH_BEGIN(loom_pc_norm)
    LU32 numel;
    LU32 n;
    LU32 c;
    LU32 s;
    LU32 q;
    LU32 cpg;
    LU32 blocks;
    LU32 len;
    LU32 stride;
    LF32 eps;
    LU32 frozen;
LOOM_PUSH_END(loom_pc_norm)

/* A window of a rank-4 tensor (slice, pad and their gradients; code
 * LOOM_WINDOW_*): out dims od, in dims id, per dim the start (negative
 * for padding) and the step; mode 1 reflects, else value fills. */
LOOM_PUSH_BEGIN(loom_pc_window)
    LU32 n;
    LU32 mode;
    LU32 od[4];
    LU32 id[4];
    LI32 start[4];
    LU32 step[4];
    LF32 value;
LOOM_PUSH_END(loom_pc_window)

/* One input of a concat: its outer x len elements to out[o * out_len +
 * off + j]. */
LOOM_PUSH_BEGIN(loom_pc_concat)
    LU32 n;
    LU32 len;
    LU32 out_len;
    LU32 off;
LOOM_PUSH_END(loom_pc_concat)

/* Values that change from run to run, computed once per run in core
 * (src/core/program.c) for every node whose op consumes them, and handed to
 * every backend: the CPU reads them, Vulkan copies them into a small
 * host-visible buffer before each submit, OpenCL passes them as an argument. */
LOOM_PUSH_BEGIN(loom_run_slot)
    LF32 lr;         /* this update's learning rate */
    LF32 alpha;      /* Adam: lr sqrt(1 - b2^t) / (1 - b1^t), in double on the host */
    LF32 decay;      /* EMA: 0 at step 1, else the decay */
    LU32 step;       /* 1-based number of this optimizer update */
    LF32 loss_scale; /* the loss scale (1 without scaling) */
    LF32 inv_scale;  /* 1 / loss_scale: gradients are unscaled by it */
    LU32 h0;         /* dropout: loom_rng_h0(seed, salt, step) */
    LU32 pad;
LOOM_PUSH_END(loom_run_slot)

#if !defined(GL_core_profile) && !defined(__OPENCL_VERSION__)
_Static_assert(sizeof(loom_pc_gemm) == 48, "loom_pc_gemm layout");
_Static_assert(sizeof(loom_pc_bcast) == 56, "loom_pc_bcast layout");
_Static_assert(sizeof(loom_pc_unary) == 12, "loom_pc_unary layout");
_Static_assert(sizeof(loom_pc_where) == 68, "loom_pc_where layout");
_Static_assert(sizeof(loom_pc_rows) == 24, "loom_pc_rows layout");
_Static_assert(sizeof(loom_pc_slot) == 8, "loom_pc_slot layout");
_Static_assert(sizeof(loom_pc_reduce) == 72, "loom_pc_reduce layout");
_Static_assert(sizeof(loom_pc_argmax) == 12, "loom_pc_argmax layout");
_Static_assert(sizeof(loom_pc_dropout) == 16, "loom_pc_dropout layout");
_Static_assert(sizeof(loom_pc_sumsq) == 36, "loom_pc_sumsq layout");
_Static_assert(sizeof(loom_pc_update) == 60, "loom_pc_update layout");
_Static_assert(sizeof(loom_run_slot) == 32, "loom_run_slot layout");
_Static_assert(sizeof(loom_pc_custom) == 36, "loom_pc_custom layout");
_Static_assert(sizeof(loom_pc_conv) == 84, "loom_pc_conv layout");
_Static_assert(sizeof(loom_pc_pool) == 48, "loom_pc_pool layout");
_Static_assert(sizeof(loom_pc_norm) == 44, "loom_pc_norm layout");
_Static_assert(sizeof(loom_pc_window) == 76, "loom_pc_window layout");
_Static_assert(sizeof(loom_pc_concat) == 16, "loom_pc_concat layout");
#endif


/* ---- sequence ops ---------------------------------------------------------- */

/* Batched GEMM: batch z (gl_WorkGroupID.z) is (z / nb1, z % nb1) of the
 * two folded batch dims; A's matrix starts at i0 * sa0 + i1 * sa1, B's at
 * i0 * sb0 + i1 * sb1, C's at z * m * n. Within a matrix as loom_pc_gemm. */
LOOM_PUSH_BEGIN(loom_pc_bmm)
    LU32 m;
    LU32 n;
    LU32 k;
    LU32 sam;
    LU32 sak;
    LU32 sbk;
    LU32 sbn;
    LU32 nb1;
    LU32 sa0;
    LU32 sa1;
    LU32 sb0;
    LU32 sb1;
LOOM_PUSH_END(loom_pc_bmm)

/* Layer / RMS norm and their gradients over rows of cols elements;
 * affine: 1 gamma bound, 2 beta bound. */
LOOM_PUSH_BEGIN(loom_pc_lnorm)
    LU32 rows;
    LU32 cols;
    LF32 eps;
    LU32 affine;
LOOM_PUSH_END(loom_pc_lnorm)

/* take / gather and their scatter-adds. take: x [outer, bound, inner],
 * nj indices; out (or dy) [outer, nj, inner]. gather: the index tensor's
 * rank-4 dims d with dense strides ds, x's (or the output's) dense strides
 * xs, the axis in that rank-4 space; n the elements computed. A
 * scatter-add sums the indices j0 <= j < j1 (take's, or along gather's
 * axis), onto the output where acc is set: a driver that cuts long loops
 * short (llvmpipe) gets the sum in several dispatches. */
LOOM_PUSH_BEGIN(loom_pc_index)
    LU32 n;
    LU32 bound;
    LU32 inner;
    LU32 nj;
    LU32 axis;
    LU32 d[4];
    LU32 ds[4];
    LU32 xs[4];
    LU32 od[4];
    LU32 j0;
    LU32 j1;
    LU32 acc;
LOOM_PUSH_END(loom_pc_index)

/* Rotary embedding: n pairs, rows of dim values, the position of row r is
 * (r / mid) % npos; l2b = log2(base); sign -1 for the inverse rotation. */
LOOM_PUSH_BEGIN(loom_pc_rope)
    LU32 n;
    LU32 halfdim;
    LU32 npos;
    LU32 mid;
    LF32 l2b;
    LF32 sign;
LOOM_PUSH_END(loom_pc_rope)

/* Fused attention (loom_attn_dims of src/backends/common/layout.h): dims,
 * the strides of q (and o, do, dq) and of k (and v, dk, dv) along b, h, n,
 * the mask's broadcast strides along b, h, i, j. */
LOOM_PUSH_BEGIN(loom_pc_attn)
    LU32 b;
    LU32 hq;
    LU32 hkv;
    LU32 nq;
    LU32 nk;
    LU32 qs[3];
    LU32 ks[3];
    LU32 ms[4];
    LU32 causal;
    LU32 has_mask;
    LF32 scale;
LOOM_PUSH_END(loom_pc_attn)

/* int8 inference (shaders/glsl/quant.comp): quantize / dequantize over n
 * elements, the parameters of channel (i / inner) % dim; the int8 GEMM
 * [m, k] . [n, k] rows (or with conv set, the convolution of the conv
 * fields) and its epilogue: the i8 output's zero point, relu, the
 * padding's value (the input's zero point). */
LOOM_PUSH_BEGIN(loom_pc_quant)
    LU32 n;
    LU32 inner;
    LU32 dim;
LOOM_PUSH_END(loom_pc_quant)

LOOM_PUSH_BEGIN(loom_pc_qgemm)
    LU32 m;
    LU32 n;
    LU32 k;
    LU32 relu;
    LF32 zero;
    LI32 pad;
    /* the convolution (m, n, k unused): as loom_pc_conv */
    LU32 cn;
    LU32 c;
    LU32 h;
    LU32 w;
    LU32 oc;
    LU32 oh;
    LU32 ow;
    LU32 kh;
    LU32 kw;
    LU32 cg;
    LU32 ocg;
    LU32 sh;
    LU32 sw;
    LU32 dh;
    LU32 dw;
    LU32 pt;
    LU32 pl;
LOOM_PUSH_END(loom_pc_qgemm)

#if !defined(GL_core_profile) && !defined(__OPENCL_VERSION__)
_Static_assert(sizeof(loom_pc_quant) == 12, "loom_pc_quant layout");
_Static_assert(sizeof(loom_pc_qgemm) == 92, "loom_pc_qgemm layout");
_Static_assert(sizeof(loom_pc_bmm) == 48, "loom_pc_bmm layout");
_Static_assert(sizeof(loom_pc_lnorm) == 16, "loom_pc_lnorm layout");
_Static_assert(sizeof(loom_pc_index) == 96, "loom_pc_index layout");
_Static_assert(sizeof(loom_pc_rope) == 24, "loom_pc_rope layout");
_Static_assert(sizeof(loom_pc_attn) == 72, "loom_pc_attn layout");
#endif

#endif
