/* Dtype traits and the half-precision conversions every backend matches. */
#include "op_table.h"

#include <string.h>

const loom_dtype_traits loom_dtypes[LOOM_DTYPE_COUNT] = {
    [LOOM_F32] = {.name = "f32", .size = 4, .block = 1, .is_float = 1, .accum = LOOM_F32, .safetensors = "F32"},
    [LOOM_I32] = {.name = "i32", .size = 4, .block = 1, .is_int = 1, .accum = LOOM_I32, .safetensors = "I32"},
    [LOOM_F16] = {.name = "f16", .size = 2, .block = 1, .is_float = 1, .half = 1, .accum = LOOM_F32,
                  .safetensors = "F16"},
    [LOOM_BF16] = {.name = "bf16", .size = 2, .block = 1, .is_float = 1, .half = 1, .accum = LOOM_F32,
                   .safetensors = "BF16"},
    [LOOM_I8] = {.name = "i8", .size = 1, .block = 1, .is_int = 1, .accum = LOOM_I32, .safetensors = "I8",
                 .qmin = -128, .qmax = 127},
};

size_t loom_dtype_size(loom_dtype dt)
{
    return (unsigned)dt < LOOM_DTYPE_COUNT ? loom_dtypes[dt].size : 0;
}

const char *loom_dtype_name(loom_dtype dt)
{
    return (unsigned)dt < LOOM_DTYPE_COUNT ? loom_dtypes[dt].name : "?";
}

int loom_dtype_is_float(loom_dtype dt)
{
    return (unsigned)dt < LOOM_DTYPE_COUNT && loom_dtypes[dt].is_float;
}

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t loom_f32_to_f16(float f)
{
    uint32_t x = bits_of(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t mag = x & 0x7fffffffu;
    if (mag >= 0x7f800000u) /* inf, or NaN (quiet, payload kept short) */
        return (uint16_t)(sign | (mag > 0x7f800000u ? 0x7e00u : 0x7c00u));
    if (mag >= 0x477ff000u) /* rounds to beyond 65504 */
        return (uint16_t)(sign | 0x7c00u);
    if (mag < 0x38800000u) {
        /* a subnormal half (or zero): round the value mag / 2^-24 to an
         * integer, to nearest even */
        if (mag < 0x33000000u)
            return (uint16_t)sign;
        uint32_t e = mag >> 23, m = (mag & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u)))
            r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = mag - 0x38000000u; /* rebias the exponent 127 -> 15 */
    r = (r + 0xfffu + ((r >> 13) & 1u)) >> 13;
    return (uint16_t)(sign | r);
}

float loom_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f)
        return float_of(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        if (m == 0)
            return float_of(sign);
        /* subnormal: normalize */
        int k = 0;
        while (!(m & 0x400u)) {
            m <<= 1;
            k++;
        }
        m &= 0x3ffu;
        return float_of(sign | ((uint32_t)(113 - k) << 23) | (m << 13));
    }
    return float_of(sign | ((e + 112) << 23) | (m << 13));
}

uint16_t loom_f32_to_bf16(float f)
{
    uint32_t x = bits_of(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u); /* NaN stays NaN */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

float loom_bf16_to_f32(uint16_t b)
{
    return float_of((uint32_t)b << 16);
}

loom_status loom_convert(loom_dtype to, void *dst, loom_dtype from, const void *src, size_t count)
{
    if (!loom_dtype_is_float(to) || !loom_dtype_is_float(from) || (count && (!dst || !src)))
        return LOOM_E_DTYPE;
    const unsigned char *s = src;
    unsigned char *d = dst;
    size_t is = loom_dtype_size(from), os = loom_dtype_size(to);
    for (size_t i = 0; i < count; i++) {
        float f;
        uint16_t h;
        if (from == LOOM_F32) {
            memcpy(&f, s + i * is, sizeof f);
        } else {
            memcpy(&h, s + i * is, sizeof h);
            f = from == LOOM_F16 ? loom_f16_to_f32(h) : loom_bf16_to_f32(h);
        }
        if (to == LOOM_F32) {
            memcpy(d + i * os, &f, sizeof f);
        } else {
            h = to == LOOM_F16 ? loom_f32_to_f16(f) : loom_f32_to_bf16(f);
            memcpy(d + i * os, &h, sizeof h);
        }
    }
    return LOOM_OK;
}
