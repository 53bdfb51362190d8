/*
 * int8 inference (src/core/ir.h, LOOM_OP_QUANTIZE ... LOOM_OP_QCONV2D):
 * quantize, dequantize, the int8 GEMM over char4 dot products and the
 * direct int8 convolution, i32 accumulation, and the epilogue of
 * include/loom.h: t = (float)acc * mult[n], one multiply, then relu or a
 * requantize to i8 (round half to even, saturate). Built twice: the
 * outputs f32 (default) or i8 (-DQOUT_I8).
 */
#pragma OPENCL FP_CONTRACT OFF

#ifdef QOUT_I8
#define QOUT_T char
#else
#define QOUT_T float
#endif

inline char q_sat(float t, float lo)
{
    return (char)clamp(t, lo, 127.0f);
}

/* x / s rounded half to even, plus z, saturated; NaN gives z */
inline char q_one(float x, float s, float z)
{
    float t = rint(x / s) + z;
    return isnan(t) ? (char)z : q_sat(t, -128.0f);
}

/* y[i] = quantize(x[i]) with the parameters of i's channel:
 * (i / inner) % dim along the axis (dim 1 per tensor) */
__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void quantize(__global char *y, uint yo, __global const float *x, uint xo, __global const float *qp, uint qo, uint n,
              uint inner, uint dim)
{
    uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    uint ch = (i / inner) % dim;
    y[yo + i] = q_one(x[xo + i], qp[qo + ch], qp[qo + dim + ch]);
}

__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void dequantize(__global float *y, uint yo, __global const char *x, uint xo, __global const float *qp, uint qo,
                uint n, uint inner, uint dim)
{
    uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    uint ch = (i / inner) % dim;
    y[yo + i] = ((float)x[xo + i] - qp[qo + dim + ch]) * qp[qo + ch];
}

/* The epilogue of one output: zero is the i8 output's zero point, relu 1
 * to floor it there (i8) or at 0 (f32: relu's body, NaN and -0 to +0). */
inline QOUT_T q_epilogue(int acc, float mult, float zero, uint relu)
{
    float t = (float)acc * mult;
#ifdef QOUT_I8
    return q_sat(rint(t) + zero, relu ? zero : -128.0f);
#else
    (void)zero;
    return relu ? (t > 0.0f ? t : 0.0f) : t;
#endif
}

/* The dot product of two rows of k int8 values: char4 at a time. */
inline int q_dot(__global const char *a, __global const char *b, uint k)
{
    int4 s = (int4)(0);
    uint i = 0;
    for (; i + 4 <= k; i += 4)
        s += convert_int4(vload4(0, a + i)) * convert_int4(vload4(0, b + i));
    int r = s.x + s.y + s.z + s.w;
    for (; i < k; i++)
        r += (int)a[i] * (int)b[i];
    return r;
}

/* y [M, N] = a [M, K] . w [N, K] rows: one output per item. */
__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void qmatmul(__global QOUT_T *y, uint yo, __global const char *a, uint ao, __global const char *w, uint wo,
             __global const int *bias, uint bo, __global const float *mult, uint mo, uint M, uint N, uint K,
             float zero, uint relu)
{
    uint i = (uint)get_global_id(0);
    if (i >= M * N)
        return;
    uint m = i / N, n = i % N;
    int acc = q_dot(a + ao + m * K, w + wo + n * K, K) + bias[bo + n];
    y[yo + i] = q_epilogue(acc, mult[mo + n], zero, relu);
}

/* The epilogue of the int8 GEMM run as f32 GEMMs (cl_quant.c): acc[m, n]
 * = bias[n] + the chunks' sums s[c][m, n], each an exact integer in f32
 * (|sum| <= 1024 * 128 * 128 = 2^24), converted exactly. */
__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void qgemm_epilogue(__global QOUT_T *y, uint yo, __global const float *s, uint so, uint chunks,
                    __global const int *bias, uint bo, __global const float *mult, uint mo, uint M, uint N,
                    float zero, uint relu)
{
    uint i = (uint)get_global_id(0);
    if (i >= M * N)
        return;
    uint n = i % N;
    int acc = bias[bo + n];
    for (uint c = 0; c < chunks; c++)
        acc += (int)s[so + c * M * N + i];
    y[yo + i] = q_epilogue(acc, mult[mo + n], zero, relu);
}

/* y [N, OC, OH, OW] = x * w, the padding reads pad (the input's zero
 * point): QC output channels of one group per item at one pixel, so that
 * each input value read (and its bounds test) serves QC products. */
#define QC LOOM_QCONV_CHANNELS
__kernel __attribute__((reqd_work_group_size(LOOM_EW_WG, 1, 1)))
void qconv(__global QOUT_T *y, uint yo, __global const char *x, uint xo, __global const char *w, uint wo,
           __global const int *bias, uint bo, __global const float *mult, uint mo, loom_pc_conv p, int pad,
           float zero, uint relu)
{
    uint i = (uint)get_global_id(0), ohw = p.oh * p.ow, nblk = (p.ocg + QC - 1u) / QC, blocks = (p.oc / p.ocg) * nblk;
    if (i >= p.n * blocks * ohw)
        return;
    uint ow = i % p.ow, oh = (i / p.ow) % p.oh, gb = (i / ohw) % blocks, b = i / (ohw * blocks);
    uint g = gb / nblk, oc0 = g * p.ocg + (gb % nblk) * QC, nc = min((uint)QC, (g + 1u) * p.ocg - oc0);
    uint taps = p.cg * p.kh * p.kw;
    int acc[QC];
    __global const char *wr[QC];
    for (uint q = 0; q < QC; q++) {
        uint oc = oc0 + min(q, nc - 1u);
        acc[q] = bias[bo + oc];
        wr[q] = w + wo + oc * taps;
    }
    for (uint c = 0; c < p.cg; c++) {
        __global const char *plane = x + xo + (b * p.c + g * p.cg + c) * p.h * p.w;
        for (uint kh = 0; kh < p.kh; kh++) {
            int ih = (int)(oh * p.sh + kh * p.dh) - (int)p.pt;
            for (uint kw = 0; kw < p.kw; kw++) {
                int iw = (int)(ow * p.sw + kw * p.dw) - (int)p.pl;
                int v = ih >= 0 && ih < (int)p.h && iw >= 0 && iw < (int)p.w ? (int)plane[ih * (int)p.w + iw] : pad;
                uint t = (c * p.kh + kh) * p.kw + kw;
                for (uint q = 0; q < QC; q++)
                    acc[q] += v * (int)wr[q][t];
            }
        }
    }
    for (uint q = 0; q < nc; q++)
        y[yo + ((b * p.oc + oc0 + q) * p.oh + oh) * p.ow + ow] = q_epilogue(acc[q], mult[mo + oc0 + q], zero, relu);
}
