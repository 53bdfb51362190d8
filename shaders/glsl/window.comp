#version 450
// Windows of a rank-4 tensor (codes.h), moving words (32-bit, or 16-bit
// with -DLOOM_WORD16): LOOM_WINDOW_SLICE out[o] = in[start + o step];
// LOOM_WINDOW_PAD the same with step 1 and a negative start, the constant
// (its bits in value) or the reflection outside; LOOM_WINDOW_SLICE_GRAD
// dx[o] = dy at the slice's element on o, 0 off the lattice.
#include "common.glsl"
#include "codes.h"
#if defined(LOOM_WORD16)
#extension GL_EXT_shader_16bit_storage : require
#define WORD uint16_t
#else
#define WORD uint
#endif

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint CODE = LOOM_WINDOW_SLICE;

layout(set = 0, binding = 0, std430) readonly buffer BufA { WORD a[]; };
layout(set = 0, binding = 1, std430) writeonly buffer BufY { WORD y[]; };
layout(push_constant) uniform Push { loom_pc_window p; };

int reflect_into(int c, int n)
{
    if (n == 1)
        return 0;
    return c < 0 ? -c : c >= n ? 2 * (n - 1) - c : c;
}

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
    uint off = 0;
    bool inside = true;
    [[unroll]] for (int d = 0; d < 4; d++) {
        int c;
        if (CODE == LOOM_WINDOW_SLICE_GRAD) {
            int t = int(o[d]) - p.start[d];
            int q = t >= 0 ? t / int(p.step[d]) : 0;
            inside = inside && t >= 0 && q * int(p.step[d]) == t && q < int(p.id[d]);
            c = q;
        } else {
            c = p.start[d] + int(o[d] * p.step[d]);
            if (c < 0 || c >= int(p.id[d])) {
                if (CODE == LOOM_WINDOW_PAD && p.mode == 1u)
                    c = reflect_into(c, int(p.id[d]));
                else
                    inside = false;
            }
        }
        off = off * p.id[d] + uint(max(c, 0));
    }
    y[i] = inside ? a[off] : WORD(floatBitsToUint(p.value));
}
