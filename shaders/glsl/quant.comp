#version 450
// int8 inference (src/core/ir.h, LOOM_OP_QUANTIZE ... LOOM_OP_QCONV2D) over
// 8-bit storage: one of QUANTIZE, DEQUANTIZE, QMATMUL, QCONV, the last two
// with QOUT_I8 for an i8 output (f32 otherwise). i32 accumulation and the
// epilogue of include/loom.h: t = float(acc) * mult[n] (one multiply,
// `precise`, so no backend fuses it into anything), then relu or the
// requantize (round half to even, saturate). The plain path: four int8
// products per step. QDOT (QMATMUL with k % 4 == 0, on a device with
// VK_KHR_shader_integer_dot_product): OpSDot over four packed int8 per
// 32-bit word. glslc has no GLSL built-in for it, so the instruction is
// named through GL_EXT_spirv_intrinsics.
#include "common.glsl"
#extension GL_EXT_shader_8bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_int8 : require
#ifdef QDOT
#extension GL_EXT_spirv_intrinsics : require
// OpSDotKHR (4450); capabilities DotProductKHR (6019) and
// DotProductInput4x8BitPackedKHR (6018); format 0 = PackedVectorFormat4x8Bit
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot4x8(uint a, uint b, spirv_literal int format);
#endif

layout(local_size_x = 256) in;

#if defined(QUANTIZE) || defined(DEQUANTIZE)
layout(push_constant) uniform Push { loom_pc_quant p; };
#ifdef QUANTIZE
layout(set = 0, binding = 0, std430) writeonly buffer BufY { int8_t y[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufX { float x[]; };
#else
layout(set = 0, binding = 0, std430) writeonly buffer BufY { float y[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufX { int8_t x[]; };
#endif
layout(set = 0, binding = 2, std430) readonly buffer BufQ { float qp[]; };

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
    uint ch = (i / p.inner) % p.dim;
    float s = qp[ch], z = qp[p.dim + ch];
#ifdef QUANTIZE
    precise float t = roundEven(x[i] / s) + z;
    y[i] = int8_t(isnan(t) ? int(z) : int(clamp(t, -128.0, 127.0)));
#else
    precise float t = (float(int(x[i])) - z) * s;
    y[i] = t;
#endif
}

#else
layout(push_constant) uniform Push { loom_pc_qgemm p; };
#ifdef QOUT_I8
layout(set = 0, binding = 0, std430) writeonly buffer BufY { int8_t y[]; };
#else
layout(set = 0, binding = 0, std430) writeonly buffer BufY { float y[]; };
#endif
#ifdef QDOT
layout(set = 0, binding = 1, std430) readonly buffer BufA { uint a4[]; };
layout(set = 0, binding = 2, std430) readonly buffer BufW { uint w4[]; };
#else
layout(set = 0, binding = 1, std430) readonly buffer BufA { int8_t a[]; };
layout(set = 0, binding = 2, std430) readonly buffer BufW { int8_t w[]; };
#endif
layout(set = 0, binding = 3, std430) readonly buffer BufB { int bias[]; };
layout(set = 0, binding = 4, std430) readonly buffer BufM { float mult[]; };

void store(uint i, int acc, uint ch)
{
    precise float t = float(acc) * mult[ch];
#ifdef QOUT_I8
    float lo = p.relu != 0u ? p.zero : -128.0;
    y[i] = int8_t(int(clamp(roundEven(t) + p.zero, lo, 127.0)));
#else
    // relu's body: NaN and -0 become +0
    y[i] = p.relu != 0u ? (t > 0.0 ? t : 0.0) : t;
#endif
}

void main()
{
    uint i = flat_gid();
#if defined(QDOT)
    if (i >= p.m * p.n)
        return;
    uint r = i / p.n, c = i % p.n, k4 = p.k / 4u, ab = r * k4, wb = c * k4;
    int acc = 0;
    for (uint q = 0u; q < k4; q++)
        acc += sdot4x8(a4[ab + q], w4[wb + q], 0);
    store(i, acc + bias[c], c);
#elif defined(QMATMUL)
    if (i >= p.m * p.n)
        return;
    uint r = i / p.n, c = i % p.n, ab = r * p.k, wb = c * p.k;
    ivec4 s4 = ivec4(0);
    uint q = 0u;
    for (; q + 4u <= p.k; q += 4u)
        s4 += ivec4(a[ab + q], a[ab + q + 1u], a[ab + q + 2u], a[ab + q + 3u]) *
              ivec4(w[wb + q], w[wb + q + 1u], w[wb + q + 2u], w[wb + q + 3u]);
    int acc = s4.x + s4.y + s4.z + s4.w;
    for (; q < p.k; q++)
        acc += int(a[ab + q]) * int(w[wb + q]);
    store(i, acc + bias[c], c);
#else
    uint ohw = p.oh * p.ow;
    if (i >= p.cn * p.oc * ohw)
        return;
    uint ow = i % p.ow, oh = (i / p.ow) % p.oh, oc = (i / ohw) % p.oc, b = i / (ohw * p.oc);
    uint g = oc / p.ocg, wr = oc * p.cg * p.kh * p.kw;
    int acc = bias[oc];
    for (uint c = 0u; c < p.cg; c++) {
        uint plane = (b * p.c + g * p.cg + c) * p.h * p.w;
        for (uint kh = 0u; kh < p.kh; kh++) {
            int ih = int(oh * p.sh + kh * p.dh) - int(p.pt);
            for (uint kw = 0u; kw < p.kw; kw++) {
                int iw = int(ow * p.sw + kw * p.dw) - int(p.pl);
                int v = ih >= 0 && ih < int(p.h) && iw >= 0 && iw < int(p.w) ? int(a[plane + uint(ih) * p.w + uint(iw)])
                                                                            : p.pad;
                acc += v * int(w[wr + (c * p.kh + kh) * p.kw + kw]);
            }
        }
    }
    store(i, acc, oc);
#endif
}
#endif
