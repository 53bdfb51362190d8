#version 450
// Max (CODE LOOM_POOL_MAX) or average pooling: one invocation per output.
// Max ignores the padding and takes the first maximum in row-major order
// (as the CPU reference); the average divides by the window's elements
// inside the input, or by the whole window (count_pad).
#include "common.glsl"
#include "codes.h"
#include "dtype.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint CODE = LOOM_POOL_MAX;

layout(set = 0, binding = 0, std430) readonly buffer BufX { TS x[]; };
layout(set = 0, binding = 1, std430) writeonly buffer BufY { TS y[]; };
layout(push_constant) uniform Push { loom_pc_pool p; };

void main()
{
    uint i = flat_gid();
    uint ohw = p.oh * p.ow;
    if (i >= p.planes * ohw)
        return;
    uint plane = i / ohw, r = i % ohw;
    int hs = int((r / p.ow) * p.sh) - int(p.pt), ws = int((r % p.ow) * p.sw) - int(p.pl);
    int h0 = max(hs, 0), w0 = max(ws, 0), h1 = min(hs + int(p.kh), int(p.h)), w1 = min(ws + int(p.kw), int(p.w));
    uint base = plane * p.h * p.w;
    float acc = CODE == LOOM_POOL_MAX ? TLOAD(x[base + uint(h0) * p.w + uint(w0)]) : 0.0;
    for (int h = h0; h < h1; h++)
        for (int w = w0; w < w1; w++) {
            float v = TLOAD(x[base + uint(h) * p.w + uint(w)]);
            acc = CODE == LOOM_POOL_MAX ? (v > acc ? v : acc) : acc + v;
        }
    if (CODE != LOOM_POOL_MAX)
        acc /= float(p.count_pad != 0u ? p.kh * p.kw : uint((h1 - h0) * (w1 - w0)));
    y[i] = TSTORE(acc);
}
