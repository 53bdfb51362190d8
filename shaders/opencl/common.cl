/*
 * Shared by every loom OpenCL program (the build embeds it after push.h
 * and codes.h and before each kernel file).
 *
 * The host passes every tensor as a buffer plus an element offset, since
 * tensors are sub-allocated from a few large blocks.
 */

/* The CPU reference is compiled as ISO C, which does not contract a*b+c
 * into an fma; OpenCL C does by default. Contraction would change the
 * rounding of every update and gradient. */
#pragma OPENCL FP_CONTRACT OFF

/* Work-group size of the element-wise kernels (each item does 8 values). */
#ifndef LOOM_EW_WG
#define LOOM_EW_WG 64
#endif

/* Work-group size of the reductions; a power of two. */
#ifndef LOOM_RED_WG
#define LOOM_RED_WG 64
#endif

/* The storage of the program's dtype (built once per dtype: -DLOOM_F16,
 * -DLOOM_BF16, else f32). TS is a tensor's element type; LD / ST read and
 * write one element as a float, LD8 / ST8 eight consecutive ones as a
 * float8. f16 goes through vload_half / vstore_half, which every OpenCL
 * 1.2 device has (no cl_khr_fp16 needed); bf16 is its upper 16 bits. The
 * arithmetic is f32 whatever the storage. */
#if defined(LOOM_F16)
typedef half TS;
#define LD(p, i) vload_half((i), (p))
#define ST(p, i, v) vstore_half_rte((v), (i), (p))
/* 8 at a time, one by one: vload_half8 needs an address aligned to 8
 * halves on some implementations (PoCL), and rows start anywhere. */
inline float8 loom_ld_half8(__global const half *p, uint i)
{
    return (float8)(vload_half(i, p), vload_half(i + 1, p), vload_half(i + 2, p), vload_half(i + 3, p),
                    vload_half(i + 4, p), vload_half(i + 5, p), vload_half(i + 6, p), vload_half(i + 7, p));
}
inline void loom_st_half8(__global half *p, uint i, float8 v)
{
    vstore_half_rte(v.s0, i, p);
    vstore_half_rte(v.s1, i + 1, p);
    vstore_half_rte(v.s2, i + 2, p);
    vstore_half_rte(v.s3, i + 3, p);
    vstore_half_rte(v.s4, i + 4, p);
    vstore_half_rte(v.s5, i + 5, p);
    vstore_half_rte(v.s6, i + 6, p);
    vstore_half_rte(v.s7, i + 7, p);
}
#define LD8(p, i) loom_ld_half8((p), (i))
#define ST8(p, i, v) loom_st_half8((p), (i), (v))
#elif defined(LOOM_BF16)
typedef ushort TS;
inline float loom_bf16_f(ushort u) { return as_float((uint)u << 16); }
inline ushort loom_f_bf16(float f)
{
    uint x = as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (ushort)((x >> 16) | 0x40u); /* NaN stays NaN */
    return (ushort)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
inline float8 loom_bf16_f8(ushort8 u) { return as_float8(convert_uint8(u) << 16); }
inline ushort8 loom_f_bf16_8(float8 f)
{
    uint8 x = as_uint8(f);
    uint8 r = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
    r = select(r, (x >> 16) | 0x40u, (x & 0x7fffffffu) > 0x7f800000u);
    return convert_ushort8(r);
}
#define LD(p, i) loom_bf16_f((p)[i])
#define ST(p, i, v) ((p)[i] = loom_f_bf16(v))
#define LD8(p, i) loom_bf16_f8(vload8(0, (p) + (i)))
#define ST8(p, i, v) vstore8(loom_f_bf16_8(v), 0, (p) + (i))
#else
typedef float TS;
#define LD(p, i) ((p)[i])
#define ST(p, i, v) ((p)[i] = (v))
#define LD8(p, i) vload8(0, (p) + (i))
#define ST8(p, i, v) vstore8((v), 0, (p) + (i))
#endif

/* The counter-based RNG of src/core/ir.h, the same integer arithmetic. */
inline uint loom_rng_hash(uint x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

inline uint8 loom_rng_hash8(uint8 x)
{
    x ^= x >> 16;
    x *= (uint8)0x7feb352dU;
    x ^= x >> 15;
    x *= (uint8)0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* Offset of dense index i of a (d.x, d.y, d.z, d.w) index space whose
 * dims have strides s (0 for broadcast dims). */
inline uint loom_off4(uint i, uint4 d, uint4 s)
{
    uint c3 = i % d.w;
    i /= d.w;
    uint c2 = i % d.z;
    i /= d.z;
    uint c1 = i % d.y;
    uint c0 = i / d.y;
    return c0 * s.x + c1 * s.y + c2 * s.z + c3 * s.w;
}

/* The row of the (d.x, d.y, d.z) index space of rows: strides s give its
 * offset. */
inline uint loom_row_base(uint r, uint4 d, uint4 s)
{
    uint c2 = r % d.z, t = r / d.z;
    return (t / d.y) * s.x + (t % d.y) * s.y + c2 * s.z;
}
