#version 450
// The gradient of a reflecting pad: dx[o] sums dy over o itself and its
// mirrors past either edge, per dim (up to 3 each).
#include "common.glsl"
#include "dtype.glsl"

layout(local_size_x = 256) in;

layout(set = 0, binding = 0, std430) readonly buffer BufDy { TS dy[]; };
layout(set = 0, binding = 1, std430) writeonly buffer BufDx { TS dx[]; };
layout(push_constant) uniform Push { loom_pc_window p; };

void main()
{
    uint i = flat_gid();
    if (i >= p.n)
        return;
    uint o[4];
    uint r = i;
    [[unroll]] for (int d = 3; d >= 0; d--) {
        o[d] = r % p.od[d];
        r /= p.od[d];
    }
    int cand[4][3];
    int nc[4];
    [[unroll]] for (int d = 0; d < 4; d++) {
        int lo = -p.start[d], n = int(p.od[d]), od = int(o[d]), hi = int(p.id[d]) - n - lo;
        nc[d] = 1;
        cand[d][0] = od + lo;
        cand[d][1] = 0;
        cand[d][2] = 0;
        if (od > 0 && od <= lo)
            cand[d][nc[d]++] = lo - od;
        if (od < n - 1 && od >= n - 1 - hi)
            cand[d][nc[d]++] = lo + 2 * (n - 1) - od;
    }
    float s = 0.0;
    for (int c0 = 0; c0 < nc[0]; c0++)
        for (int c1 = 0; c1 < nc[1]; c1++)
            for (int c2 = 0; c2 < nc[2]; c2++)
                for (int c3 = 0; c3 < nc[3]; c3++)
                    s += TLOAD(dy[((uint(cand[0][c0]) * p.id[1] + uint(cand[1][c1])) * p.id[2] + uint(cand[2][c2])) *
                                      p.id[3] + uint(cand[3][c3])]);
    dx[i] = TSTORE(s);
}
