// Which element an invocation of an update kernel (adam, sgd, ema) updates.
// Alone, it is the invocation's index into one tensor. With LOOM_MULTI, one
// dispatch updates a whole group of tensors (the core's multi-tensor
// update): the table holds an entry per tensor (LOOM_UPDATE_ENTRY words:
// its element offsets into the bound windows, its size, its gradient's rows,
// its first workgroup) and each workgroup finds its tensor by bisection.
// An invocation updates PER elements, a workgroup's size apart: where
// invocations are emulated (CPU drivers) each workgroup is a call with a
// cost of its own, and the host asks for many per workgroup.
// The kernel defines G(i), the gradient's element i, before including this.
#ifndef LOOM_UPDATE_GLSL
#define LOOM_UPDATE_GLSL

layout(constant_id = 1) const uint PER = 1u;

#ifdef LOOM_MULTI
layout(set = 0, binding = TABLE_BINDING, std430) readonly buffer BufT { uint tab[]; };
uint e_p = 0u, e_g = 0u, e_m = 0u, e_v = 0u;
#else
const uint e_p = 0u, e_g = 0u, e_m = 0u, e_v = 0u;
#endif

// The invocation's first element (the others follow gl_WorkGroupSize.x
// apart), its tensor's size and its gradient's rows. With LOOM_MULTI a
// table entry may say its tensor goes four elements to an invocation
// (lanes, its word 7): the kernel then reads and writes vec4s, elements
// i .. i+3, and the next are 4 gl_WorkGroupSize.x apart. Where
// invocations are emulated a vec4 is one access where four floats were
// four (on lavapipe, each a lane-by-lane gather).
uint lanes = 1u;
void update_first(out uint i, out uint n, out uint rows)
{
#ifdef LOOM_MULTI
    uint wg = flat_group();
    uint lo = 0u, hi = p.n;
    while (hi - lo > 1u) {
        uint mid = (lo + hi) / 2u;
        if (tab[p.first + mid * LOOM_UPDATE_ENTRY + 6u] <= wg)
            lo = mid;
        else
            hi = mid;
    }
    uint e = p.first + lo * LOOM_UPDATE_ENTRY;
    e_p = tab[e];
    e_g = tab[e + 1u];
    e_m = tab[e + 2u];
    e_v = tab[e + 3u];
    n = tab[e + 4u];
    rows = tab[e + 5u];
    lanes = max(tab[e + 7u], 1u);
    i = ((wg - tab[e + 6u]) * gl_WorkGroupSize.x * PER + gl_LocalInvocationID.x) * lanes;
#else
    i = flat_group() * gl_WorkGroupSize.x * PER + gl_LocalInvocationID.x;
    n = p.n;
    rows = p.grad_rows;
#endif
}

// The gradient's element i: G(i) itself, or (a bias's gradient folded into
// its update) the sum of column i of a [rows, n] gradient, in row order.
float grad_sum(uint i, uint n, uint rows)
{
    if (rows == 0u)
        return G(i);
    float s = 0.0;
    for (uint r = 0u; r < rows; r++)
        s += G(r * n + i);
    return s;
}

#endif
