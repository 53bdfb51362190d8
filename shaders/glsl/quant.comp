#version 450
// int8 inference (src/core/ir.h, LOOM_OP_QUANTIZE ... LOOM_OP_QCONV2D) over
// 8-bit storage: one of QUANTIZE, DEQUANTIZE, QMATMUL, QCONV, the last two
// with QOUT_I8 for an i8 output (f32 otherwise). i32 accumulation and the
// epilogue of include/loom.h: t = float(acc) * mult[n] (one multiply,
// `precise`, so no backend fuses it into anything), then relu or the
// requantize (round half to even, saturate). QMATMUL and QCONV: one
// output per invocation, four int8 products per step.
// QTILED (QMATMUL with k % 4 == 0): 64x64 outputs per workgroup of 16x16,
// 4x4 per invocation, operands read as words of four packed int8 through
// shared memory, 8 words of k at a time. With QDOT (a device with
// VK_KHR_shader_integer_dot_product) a word pair is one OpSDot; glslc has
// no GLSL built-in for it, so the instruction is named through
// GL_EXT_spirv_intrinsics. Without, the word's bytes are unpacked.
#include "common.glsl"
#extension GL_EXT_shader_8bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_int8 : require
#ifdef QDOT
#extension GL_EXT_spirv_intrinsics : require
// OpSDotKHR (4450); capabilities DotProductKHR (6019) and
// DotProductInput4x8BitPackedKHR (6018); format 0 = PackedVectorFormat4x8Bit
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot4x8(uint a, uint b, spirv_literal int format);
#define DOT4(a, b) sdot4x8(a, b, 0)
#else
int dot4(uint a, uint b)
{
    ivec4 x = ivec4(bitfieldExtract(int(a), 0, 8), bitfieldExtract(int(a), 8, 8), bitfieldExtract(int(a), 16, 8),
                    bitfieldExtract(int(a), 24, 8));
    ivec4 y = ivec4(bitfieldExtract(int(b), 0, 8), bitfieldExtract(int(b), 8, 8), bitfieldExtract(int(b), 16, 8),
                    bitfieldExtract(int(b), 24, 8));
    return x.x * y.x + x.y * y.y + x.z * y.z + x.w * y.w;
}
#define DOT4(a, b) dot4(a, b)
#endif

#ifdef QTILED
layout(local_size_x = 16, local_size_y = 16) in;
#else
layout(local_size_x = 256) in;
#endif

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
#ifdef QTILED
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

#ifdef QTILED
shared uint ta[8][64], tw[8][64];

void main()
{
    uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y, t = ty * 16u + tx;
    uint bm = gl_WorkGroupID.y * 64u, bn = gl_WorkGroupID.x * 64u, k4 = p.k / 4u;
    int acc[4][4];
    [[unroll]] for (int i = 0; i < 4; i++)
        [[unroll]] for (int j = 0; j < 4; j++)
            acc[i][j] = 0;
    for (uint k0 = 0u; k0 < k4; k0 += 8u) {
        // 512 words of each tile, two per invocation: row e / 8, word e % 8
        [[unroll]] for (uint h = 0u; h < 2u; h++) {
            uint e = t + h * 256u, row = e / 8u, q = k0 + e % 8u;
            ta[e % 8u][row] = bm + row < p.m && q < k4 ? a4[(bm + row) * k4 + q] : 0u;
            tw[e % 8u][row] = bn + row < p.n && q < k4 ? w4[(bn + row) * k4 + q] : 0u;
        }
        barrier();
        [[unroll]] for (uint kk = 0u; kk < 8u; kk++) {
            uint av[4], wv[4];
            [[unroll]] for (uint i = 0u; i < 4u; i++) {
                av[i] = ta[kk][ty + 16u * i];
                wv[i] = tw[kk][tx + 16u * i];
            }
            [[unroll]] for (uint i = 0u; i < 4u; i++)
                [[unroll]] for (uint j = 0u; j < 4u; j++)
                    acc[i][j] += DOT4(av[i], wv[j]);
        }
        barrier();
    }
    [[unroll]] for (uint i = 0u; i < 4u; i++)
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            uint r = bm + ty + 16u * i, c = bn + tx + 16u * j;
            if (r < p.m && c < p.n)
                store(r * p.n + c, acc[i][j] + bias[c], c);
        }
}
#else
void main()
{
    uint i = flat_gid();
#if defined(QMATMUL)
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
#endif
