#version 450
// Adam and AdamW (decoupled weight decay applied before the step), in place
// on the parameter and both moments; one tensor, or with LOOM_MULTI a group
// of them (update.glsl).
#include "common.glsl"
#ifdef LOOM_MULTI
#define RUN_BINDING 3
#define TABLE_BINDING 4
#else
#define RUN_BINDING 5
#endif
#include "runslots.glsl"

layout(local_size_x = 256) in;

#ifdef LOOM_MULTI
// the parameters and moments (a window of the state), the gradients
layout(set = 0, binding = 0, std430) buffer BufS { float st[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufG { float gr[]; };
layout(set = 0, binding = 2, std430) readonly buffer BufN { float sumsq[]; };
// the same windows as vec4s, for the entries that go four to an invocation
layout(set = 0, binding = 0, std430) buffer BufS4 { vec4 st4[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufG4 { vec4 gr4[]; };
#ifdef LOOM_TEXEL
// Where invocations are emulated (CPU drivers), a storage-buffer load is a
// lane-by-lane loop and a texel fetch one vectorized gather: the same two
// windows again as rgba32f texel buffers, for the vec4 reads. (The stores
// stay storage-buffer ones: as rgba32f image stores they measured the same
// on lavapipe.)
layout(set = 0, binding = 5) uniform samplerBuffer st_t;
layout(set = 0, binding = 6) uniform samplerBuffer gr_t;
#define ST4(k) texelFetch(st_t, int(k))
#define GR4(k) texelFetch(gr_t, int(k))
#else
#define ST4(k) st4[k]
#define GR4(k) gr4[k]
#endif
#define W st[e_p + i]
#define M st[e_m + i]
#define V st[e_v + i]
#define G(k) gr[e_g + (k)]
#else
layout(set = 0, binding = 0, std430) buffer BufP { float w[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufG { float g[]; };
layout(set = 0, binding = 2, std430) buffer BufM { float m[]; };
layout(set = 0, binding = 3, std430) buffer BufV { float v[]; };
layout(set = 0, binding = 4, std430) readonly buffer BufN { float sumsq[]; };
#define W w[i]
#define M m[i]
#define V v[i]
#define G(k) g[k]
#endif
layout(push_constant) uniform Push { loom_pc_update p; };

#include "penalty.glsl"
#include "update.glsl"

// One element: the parameter w and its moments m and v, from gradient g.
void adam_step(inout float w, inout float m, inout float v, float g, float f, float lr, float alpha)
{
    float gi = penalized(g, w, f);
    if (p.weight_decay != 0.0)
        w -= lr * p.weight_decay * w;
    m = m + (gi - m) * (1.0 - p.beta1);
    v = v + (gi * gi - v) * (1.0 - p.beta2);
    w = w - alpha * m / (sqrt(v) + p.eps);
}

void main()
{
    uint i0, n, rows;
    update_first(i0, n, rows);
    if (i0 >= n)
        return;
    bool skip;
    float f = grad_factor(p.clip != 0u ? sumsq[0] : 0.0, run[p.slot].inv_scale, skip);
    if (skip)
        return;
    float lr = run[p.slot].lr, alpha = run[p.slot].alpha;
#ifdef LOOM_MULTI
    if (lanes == 4u) {
        // the host gives four lanes only to whole vec4s: n and every
        // offset a multiple of 4
        for (uint j = 0u; j < PER; j++) {
            uint i = i0 + j * 4u * gl_WorkGroupSize.x;
            if (i >= n)
                return;
            vec4 w4 = ST4((e_p + i) >> 2), m4 = ST4((e_m + i) >> 2), v4 = ST4((e_v + i) >> 2);
            vec4 g4 = vec4(0.0);
            if (rows == 0u)
                g4 = GR4((e_g + i) >> 2);
            else
                for (uint r = 0u; r < rows; r++)
                    g4 += GR4((e_g + r * n + i) >> 2);
            for (int c = 0; c < 4; c++) {
                float wc = w4[c], mc = m4[c], vc = v4[c];
                adam_step(wc, mc, vc, g4[c], f, lr, alpha);
                w4[c] = wc;
                m4[c] = mc;
                v4[c] = vc;
            }
            st4[(e_m + i) >> 2] = m4;
            st4[(e_v + i) >> 2] = v4;
            st4[(e_p + i) >> 2] = w4;
        }
        return;
    }
#endif
    for (uint j = 0u; j < PER; j++) {
        uint i = i0 + j * gl_WorkGroupSize.x;
        if (i >= n)
            return;
        float wi = W, mi = M, vi = V;
        adam_step(wi, mi, vi, grad_sum(i, n, rows), f, lr, alpha);
        M = mi;
        V = vi;
        W = wi;
    }
}
