#version 450
// The gradients of pooling, gathered: one invocation per element of dx
// sums the dy of every window that holds it: at the window's first
// arg-max (max, CODE LOOM_POOL_MAX, recomputed from x), or divided over
// the window (average). Binding 1 is x (an alias for the average).
#include "common.glsl"
#include "codes.h"
#include "dtype.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint CODE = LOOM_POOL_MAX;

layout(set = 0, binding = 0, std430) readonly buffer BufDy { TS dy[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufX { TS x[]; };
layout(set = 0, binding = 2, std430) writeonly buffer BufDx { TS dx[]; };
layout(push_constant) uniform Push { loom_pc_pool p; };

void main()
{
    uint i = flat_gid();
    uint hw = p.h * p.w;
    if (i >= p.planes * hw)
        return;
    uint plane = i / hw, r = i % hw;
    int hh = int(r / p.w), ww = int(r % p.w);
    // windows (oh, ow) with oh sh - pt <= hh < oh sh - pt + kh
    int ohl = max(0, (hh + int(p.pt) - int(p.kh) + int(p.sh)) / int(p.sh));
    int ohh = min(int(p.oh) - 1, (hh + int(p.pt)) / int(p.sh));
    int owl = max(0, (ww + int(p.pl) - int(p.kw) + int(p.sw)) / int(p.sw));
    int owh = min(int(p.ow) - 1, (ww + int(p.pl)) / int(p.sw));
    uint base = plane * hw;
    float s = 0.0;
    for (int oh = ohl; oh <= ohh; oh++)
        for (int ow = owl; ow <= owh; ow++) {
            int hs = oh * int(p.sh) - int(p.pt), ws = ow * int(p.sw) - int(p.pl);
            int h0 = max(hs, 0), w0 = max(ws, 0), h1 = min(hs + int(p.kh), int(p.h)), w1 = min(ws + int(p.kw), int(p.w));
            float d = TLOAD(dy[plane * p.oh * p.ow + uint(oh) * p.ow + uint(ow)]);
            if (CODE == LOOM_POOL_MAX) {
                int bh = h0, bw = w0;
                float best = TLOAD(x[base + uint(h0) * p.w + uint(w0)]);
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++) {
                        float v = TLOAD(x[base + uint(h) * p.w + uint(w)]);
                        if (v > best) {
                            best = v;
                            bh = h;
                            bw = w;
                        }
                    }
                if (bh == hh && bw == ww)
                    s += d;
            } else {
                s += d / float(p.count_pad != 0u ? p.kh * p.kw : uint((h1 - h0) * (w1 - w0)));
            }
        }
    dx[i] = TSTORE(s);
}
