#version 450
// The scatter-adds, each output owning its sum (no atomics, the same sum
// in the same order on every run and as the CPU's). take's gradient (code
// LOOM_INDEX_TAKE): out [outer, bound, inner], an invocation per (o, v) and
// chunk of CH columns, summing dy [outer, nj, inner] over the j with
// idx[j] == v in ascending j. gather's (LOOM_INDEX_GATHER): an invocation
// per output q, summing src at p over p == q off the axis with idx[p] ==
// q[axis]. Indices out of range add nothing. A dispatch sums the indices
// j0 <= j < j1 (along the axis for gather), onto the output with acc.
#include "common.glsl"
#include "dtype.glsl"
#include "codes.h"

#define CH 8
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint CODE = 0;

layout(set = 0, binding = 0, std430) readonly buffer BufS { TS src_[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufI { int idx_[]; };
layout(set = 0, binding = 2, std430) buffer BufY { TS y_[]; };
layout(push_constant) uniform Push { loom_pc_index p; };

void main()
{
    uint e = flat_gid();
    if (e >= p.n)
        return;
    if (CODE == LOOM_INDEX_TAKE) {
        uint chunks = (p.inner + CH - 1) / CH;
        uint ch = e % chunks, r = e / chunks, v = r % p.bound, o = r / p.bound;
        uint i0 = ch * CH, cnt = min(CH, p.inner - i0);
        float acc[CH];
        [[unroll]] for (uint t = 0; t < CH; t++)
            acc[t] = 0.0;
        for (uint j = p.j0; j < p.j1; j++) {
            if (idx_[j] != int(v))
                continue;
            uint sb = (o * p.nj + j) * p.inner + i0;
            [[unroll]] for (uint t = 0; t < CH; t++)
                if (t < cnt)
                    acc[t] += TLOAD(src_[sb + t]);
        }
        uint yb = (o * p.bound + v) * p.inner + i0;
        [[unroll]] for (uint t = 0; t < CH; t++)
            if (t < cnt)
                y_[yb + t] = TSTORE(p.acc != 0u ? TLOAD(y_[yb + t]) + acc[t] : acc[t]);
        return;
    }
    // q's coordinates over the output's rank-4 dims
    uint c[4];
    uint r = e;
    [[unroll]] for (int k = 3; k >= 0; k--) {
        c[k] = r % p.od[k];
        r /= p.od[k];
    }
    uint target = c[p.axis];
    float acc = 0.0;
    bool inside = true;
    [[unroll]] for (uint k = 0; k < 4; k++)
        inside = inside && (k == p.axis || c[k] < p.d[k]);
    if (inside) {
        c[p.axis] = 0;
        uint pbase = c[0] * p.ds[0] + c[1] * p.ds[1] + c[2] * p.ds[2] + c[3] * p.ds[3];
        for (uint k = p.j0; k < p.j1; k++) {
            uint pi = pbase + k * p.ds[p.axis];
            if (idx_[pi] == int(target))
                acc += TLOAD(src_[pi]);
        }
    }
    y_[e] = TSTORE(p.acc != 0u ? TLOAD(y_[e]) + acc : acc);
}
