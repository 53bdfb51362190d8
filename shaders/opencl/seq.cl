/*
 * The sequence ops but attention: layer / RMS norm and their gradients,
 * take / gather and their scatter-adds (each output owning its sum, summed
 * in ascending source order as the CPU does), rotary embeddings. Tensors
 * in the program's dtype (TS), indices i32, arithmetic f32. Semantics
 * follow src/backends/cpu/cpu_seq.c.
 */

/* One row per item: the statistics in two passes. rms: code LOOM_LNORM_RMS;
 * affine: 1 gamma, 2 beta (unbound ones alias x). */
__kernel void norm_rows(__global TS *y, uint yo, __global const TS *x, uint xo, __global const TS *g, uint go,
                        __global const TS *b, uint bo, uint rows, uint cols, float eps, uint affine, uint rms)
{
    uint r = (uint)get_global_id(0);
    if (r >= rows)
        return;
    uint base = xo + r * cols;
    float mean = 0.0f, var = 0.0f;
    if (!rms) {
        for (uint j = 0; j < cols; j++)
            mean += LD(x, base + j);
        mean /= (float)cols;
    }
    for (uint j = 0; j < cols; j++) {
        float t = LD(x, base + j) - mean;
        var += t * t;
    }
    float rstd = 1.0f / sqrt(var / (float)cols + eps);
    for (uint j = 0; j < cols; j++) {
        float v = (LD(x, base + j) - mean) * rstd;
        if (affine & 1u)
            v *= LD(g, go + j);
        if (affine & 2u)
            v += LD(b, bo + j);
        ST(y, yo + r * cols + j, v);
    }
}

/* dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy gamma (RMS norm:
 * no mean(g) term and no mean in xhat). */
__kernel void norm_grad_rows(__global TS *y, uint yo, __global const TS *dy, uint dyo, __global const TS *x, uint xo,
                             __global const TS *g, uint go, uint rows, uint cols, float eps, uint affine, uint rms)
{
    uint r = (uint)get_global_id(0);
    if (r >= rows)
        return;
    uint base = xo + r * cols, db = dyo + r * cols;
    float mean = 0.0f, var = 0.0f;
    if (!rms) {
        for (uint j = 0; j < cols; j++)
            mean += LD(x, base + j);
        mean /= (float)cols;
    }
    for (uint j = 0; j < cols; j++) {
        float t = LD(x, base + j) - mean;
        var += t * t;
    }
    float rstd = 1.0f / sqrt(var / (float)cols + eps), sg = 0.0f, sgx = 0.0f;
    for (uint j = 0; j < cols; j++) {
        float gj = LD(dy, db + j) * ((affine & 1u) ? LD(g, go + j) : 1.0f);
        sg += gj;
        sgx += gj * (LD(x, base + j) - mean) * rstd;
    }
    sg /= (float)cols;
    sgx /= (float)cols;
    for (uint j = 0; j < cols; j++) {
        float gj = LD(dy, db + j) * ((affine & 1u) ? LD(g, go + j) : 1.0f);
        ST(y, yo + r * cols + j, rstd * (gj - (rms ? 0.0f : sg) - (LD(x, base + j) - mean) * rstd * sgx));
    }
}

/* take: x [outer, bound, inner] at nj indices; gather: out at p = x at p
 * with its axis coordinate idx[p] (d, ds: idx's rank-4 dims and strides,
 * xs: x's). NaN for an index out of range. */
__kernel void take_items(__global TS *y, uint yo, __global const TS *x, uint xo, __global const int *idx, uint io,
                         uint n, uint bound, uint inner, uint nj, uint axis, uint4 d, uint4 xs, uint code)
{
    uint e = (uint)get_global_id(0);
    if (e >= n)
        return;
    int v = idx[io + (code == LOOM_INDEX_TAKE ? (e / inner) % nj : e)];
    if (v < 0 || (uint)v >= bound) {
        ST(y, yo + e, NAN);
        return;
    }
    uint src;
    if (code == LOOM_INDEX_TAKE) {
        uint i = e % inner, o = e / inner / nj;
        src = (o * bound + (uint)v) * inner + i;
    } else {
        uint c3 = e % d.w, r = e / d.w, c2 = r % d.z;
        r /= d.z;
        uint c1 = r % d.y, c0 = r / d.y;
        uint c[4] = {c0, c1, c2, c3};
        c[axis] = (uint)v;
        src = c[0] * xs.x + c[1] * xs.y + c[2] * xs.z + c[3] * xs.w;
    }
    ST(y, yo + e, LD(x, xo + src));
}

/* take's gradient: an item per (o, v) and 8 columns, summing src [outer,
 * nj, inner] over the j with idx[j] == v; gather's: an item per output q
 * (od: the output's rank-4 dims) summing src at the p that match it off the
 * axis with idx[p] == q[axis]. */
__kernel void scatter_items(__global TS *y, uint yo, __global const TS *src, uint so, __global const int *idx, uint io,
                            uint n, uint bound, uint inner, uint nj, uint axis, uint4 d, uint4 ds, uint4 od,
                            uint code)
{
    uint e = (uint)get_global_id(0);
    if (e >= n)
        return;
    if (code == LOOM_INDEX_TAKE) {
        uint chunks = (inner + 7u) / 8u;
        uint ch = e % chunks, r = e / chunks, v = r % bound, o = r / bound;
        uint i0 = ch * 8u, cnt = min(8u, inner - i0);
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (uint j = 0; j < nj; j++) {
            if (idx[io + j] != (int)v)
                continue;
            uint sb = so + (o * nj + j) * inner + i0;
            for (uint t = 0; t < cnt; t++)
                acc[t] += LD(src, sb + t);
        }
        uint yb = yo + (o * bound + v) * inner + i0;
        for (uint t = 0; t < cnt; t++)
            ST(y, yb + t, acc[t]);
        return;
    }
    uint c3 = e % od.w, r = e / od.w, c2 = r % od.z;
    r /= od.z;
    uint c1 = r % od.y, c0 = r / od.y;
    uint c[4] = {c0, c1, c2, c3}, dd[4] = {d.x, d.y, d.z, d.w}, st[4] = {ds.x, ds.y, ds.z, ds.w};
    uint target = c[axis];
    float acc = 0.0f;
    int inside = 1;
    for (uint k = 0; k < 4; k++)
        inside = inside && (k == axis || c[k] < dd[k]);
    if (inside) {
        c[axis] = 0;
        uint pb = c[0] * st[0] + c[1] * st[1] + c[2] * st[2] + c[3] * st[3];
        for (uint k = 0; k < dd[axis]; k++) {
            uint p = pb + k * st[axis];
            if (idx[io + p] == (int)target)
                acc += LD(src, so + p);
        }
    }
    ST(y, yo + e, acc);
}

/* Rotary embedding: an item per pair; the angle as the CPU computes it. */
__kernel void rope_pairs(__global TS *y, uint yo, __global const TS *x, uint xo, uint n, uint half_dim, uint npos,
                         uint mid, float l2b, float sign)
{
    uint e = (uint)get_global_id(0);
    if (e >= n)
        return;
    uint i = e % half_dim, row = e / half_dim, pos = (row / mid) % npos;
    uint dim = 2u * half_dim, base = row * dim;
    float th = (float)pos * exp2(-(float)(2u * i) / (float)dim * l2b);
    float c = cos(th), s = sign * sin(th);
    float x1 = LD(x, xo + base + i), x2 = LD(x, xo + base + i + half_dim);
    ST(y, yo + base + i, x1 * c - x2 * s);
    ST(y, yo + base + i + half_dim, x1 * s + x2 * c);
}
