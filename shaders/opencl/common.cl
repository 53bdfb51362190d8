/*
 * Shared by every loom OpenCL program (the build embeds it after codes.h
 * and before each kernel file).
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
