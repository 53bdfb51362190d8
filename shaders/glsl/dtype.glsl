// The storage of the variant's dtype: the build compiles each kernel once
// per dtype (-DLOOM_F16, -DLOOM_BF16, else f32). TS is a tensor's element
// type in its buffer; TLOAD widens one element to float, TSTORE narrows a
// float back (round to nearest even, as the CPU's conversions). The
// arithmetic is f32 in every variant.
#ifndef LOOM_DTYPE_GLSL
#define LOOM_DTYPE_GLSL

#if defined(LOOM_F16)
#extension GL_EXT_shader_16bit_storage : require
#define TS float16_t
#define TLOAD(v) float(v)
#define TSTORE(f) float16_t(f)
#elif defined(LOOM_BF16)
#extension GL_EXT_shader_16bit_storage : require
#define TS uint16_t
#define TLOAD(v) uintBitsToFloat(uint(v) << 16)
#define TSTORE(f) uint16_t(loom_bf16_bits(f))
uint loom_bf16_bits(float f)
{
    uint x = floatBitsToUint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (x >> 16) | 0x40u; // NaN stays NaN
    return (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
}
#else
#define TS float
#define TLOAD(v) (v)
#define TSTORE(f) (f)
#endif

#endif
