// The gradient an update uses: unscaled by the run's 1 / loss scale,
// clipped by the global norm, plus the gradients of the Keras l2 and l1
// penalties (see LOOM_OP_SGD_UPDATE). A loss-scaled step whose gradients
// are not finite is skipped.
#ifndef LOOM_PENALTY_GLSL
#define LOOM_PENALTY_GLSL

// The factor of every gradient; *skip when the step must not happen.
float grad_factor(float sumsq, float inv_scale, out bool skip)
{
    skip = false;
    if (p.clip == 0u)
        return inv_scale;
    if (p.skip_nonfinite != 0u && (isnan(sumsq) || isinf(sumsq))) {
        skip = true;
        return 0.0;
    }
    float norm = sqrt(sumsq) * inv_scale;
    return p.clip_norm > 0.0 && norm > p.clip_norm ? inv_scale * p.clip_norm / norm : inv_scale;
}

float penalized(float g, float w, float f)
{
    float s = w > 0.0 ? 1.0 : w < 0.0 ? -1.0 : 0.0;
    return g * f + 2.0 * p.l2 * w + p.l1 * s;
}

#endif
