#version 450
// One dtype to another: FROM_* and TO_* (F32, F16, BF16, I32) name the
// storage of the input and of the output. Floats to i32 round to nearest
// (even), saturate, and NaN gives 0, as the CPU does.
#include "common.glsl"
#extension GL_EXT_shader_16bit_storage : require

layout(local_size_x = 256) in;

#if defined(FROM_F16)
#define IN_T float16_t
#define IN(v) float(v)
#elif defined(FROM_BF16)
#define IN_T uint16_t
#define IN(v) uintBitsToFloat(uint(v) << 16)
#elif defined(FROM_I32)
#define IN_T int
#define IN(v) float(v)
#else
#define IN_T float
#define IN(v) (v)
#endif

uint bf16_bits(float f)
{
    uint x = floatBitsToUint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (x >> 16) | 0x40u;
    return (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
}

int to_i32(float f)
{
    if (isnan(f))
        return 0;
    float r = roundEven(f);
    return r >= 2147483647.0 ? 2147483647 : r <= -2147483648.0 ? int(0x80000000u) : int(r);
}

#if defined(TO_F16)
#define OUT_T float16_t
#define OUT(f) float16_t(f)
#elif defined(TO_BF16)
#define OUT_T uint16_t
#define OUT(f) uint16_t(bf16_bits(f))
#elif defined(TO_I32)
#define OUT_T int
#define OUT(f) to_i32(f)
#else
#define OUT_T float
#define OUT(f) (f)
#endif

layout(set = 0, binding = 0, std430) readonly buffer BufA { IN_T a[]; };
layout(set = 0, binding = 1, std430) writeonly buffer BufY { OUT_T y[]; };
layout(push_constant) uniform Push { loom_pc_unary p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
#if defined(FROM_I32) && defined(TO_I32)
    y[i] = a[i];
#else
    y[i] = OUT(IN(a[i]));
#endif
}
