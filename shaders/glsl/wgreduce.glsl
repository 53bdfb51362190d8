// Workgroup-wide max and sum through shared memory. Every invocation of
// the workgroup must call them (they contain barriers). WG is the
// workgroup size, a power of two.
#ifndef LOOM_WGREDUCE_GLSL
#define LOOM_WGREDUCE_GLSL

shared float wg_red[WG];

float wg_max(float v)
{
    uint l = gl_LocalInvocationIndex;
    wg_red[l] = v;
    barrier();
    [[unroll]] for (uint s = WG / 2; s > 0; s >>= 1) {
        if (l < s)
            wg_red[l] = max(wg_red[l], wg_red[l + s]);
        barrier();
    }
    float r = wg_red[0];
    barrier();
    return r;
}

float wg_sum(float v)
{
    uint l = gl_LocalInvocationIndex;
    wg_red[l] = v;
    barrier();
    [[unroll]] for (uint s = WG / 2; s > 0; s >>= 1) {
        if (l < s)
            wg_red[l] += wg_red[l + s];
        barrier();
    }
    float r = wg_red[0];
    barrier();
    return r;
}

#define NEG_INF uintBitsToFloat(0xff800000u)

#endif
