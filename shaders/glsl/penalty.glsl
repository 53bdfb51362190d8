// The gradient an update uses: clipped by the global norm, plus the
// gradients of the Keras l2 and l1 penalties (see LOOM_OP_SGD_UPDATE).
#ifndef LOOM_PENALTY_GLSL
#define LOOM_PENALTY_GLSL

float clip_scale(float sumsq)
{
    if (p.clip == 0u)
        return 1.0;
    float norm = sqrt(sumsq);
    return norm > p.clip_norm ? p.clip_norm / norm : 1.0;
}

float penalized(float g, float w, float clip)
{
    float s = w > 0.0 ? 1.0 : w < 0.0 ? -1.0 : 0.0;
    return g * clip + 2.0 * p.l2 * w + p.l1 * s;
}

#endif
