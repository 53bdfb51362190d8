/*
 * The activations a GEMM applies to its result and the activation
 * gradients it multiplies its result by (the backward pass of a dense
 * layer), made from the op bodies of ew_unary.cl, which the build appends
 * after this file: a fused GEMM computes exactly what the separate unary
 * kernel would. Each body line gives two functions per op, over the
 * GEMM's vector type GV (gemm.cl): epiv_<op> (y from x) and depiv_<op> (dy f'(v), v the forward output). gemm.cl selects them by a
 * LOOM_EPI_* code (shaders/codes.h).
 */

#ifndef LOOM_SQRT1_2
#define LOOM_SQRT1_2 0.70710678118654752f
#define LOOM_INV_SQRT_2PI 0.39894228040143268f
#endif

/* The GEMM's vector width (build option GEMM_VW): GV is float GEMM_VW. */
#ifndef GEMM_VW
#define GEMM_VW 8
#endif
#define GEMM_CAT_(a, b) a##b
#define GEMM_CAT(a, b) GEMM_CAT_(a, b)
#define GV GEMM_CAT(float, GEMM_VW)

#define LOOM_UNARY(name, F, D)                                                                               \
    inline GV epiv_##name(GV x, float p, float q)                                                            \
    {                                                                                                        \
        typedef GV T;                                                                                        \
        return (F);                                                                                          \
    }                                                                                                        \
    inline GV depiv_##name(GV dy, GV v, float p, float q)                                                    \
    {                                                                                                        \
        typedef GV T;                                                                                        \
        return (D);                                                                                          \
    }
