/*
 * One dtype to another, built once per pair (-DFROM_F32 ... -DTO_I32;
 * FROM_I8 for the int8 GEMM's operands, cl_quant.c):
 * floats to i32 round to nearest even, saturate, and NaN gives 0, as the
 * CPU does. The pair's program does not use TS (it is built as f32).
 */
#if defined(FROM_F16)
#define IN_T half
#define IN(p, i) vload_half((i), (p))
#elif defined(FROM_BF16)
#define IN_T ushort
#define IN(p, i) as_float((uint)(p)[i] << 16)
#elif defined(FROM_I32)
#define IN_T int
#define IN(p, i) ((float)(p)[i])
#elif defined(FROM_I8)
#define IN_T char
#define IN(p, i) ((float)(p)[i])
#else
#define IN_T float
#define IN(p, i) ((p)[i])
#endif

inline ushort cast_bf16(float f)
{
    uint x = as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (ushort)((x >> 16) | 0x40u);
    return (ushort)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

inline int cast_i32(float f)
{
    if (isnan(f))
        return 0;
    float r = rint(f);
    return r >= 2147483647.0f ? 2147483647 : r <= -2147483648.0f ? (int)0x80000000u : (int)r;
}

#if defined(TO_F16)
#define OUT_T half
#define OUT(p, i, v) vstore_half_rte((v), (i), (p))
#elif defined(TO_BF16)
#define OUT_T ushort
#define OUT(p, i, v) ((p)[i] = cast_bf16(v))
#elif defined(TO_I32)
#define OUT_T int
#define OUT(p, i, v) ((p)[i] = cast_i32(v))
#else
#define OUT_T float
#define OUT(p, i, v) ((p)[i] = (v))
#endif

__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void cast(__global OUT_T *y, uint yo, __global const IN_T *a, uint ao, uint n)
{
    uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
#if defined(FROM_I32) && defined(TO_I32)
    y[yo + i] = a[ao + i];
#else
    OUT(y, yo + i, IN(a, ao + i));
#endif
}
