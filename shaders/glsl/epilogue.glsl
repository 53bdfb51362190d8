// The activations a GEMM applies to its result, and the activation
// gradients it multiplies its result by (the backward pass of a dense
// layer): the op bodies of ew_unary.glsl selected by a LOOM_EPI_* code, so
// a fused GEMM computes exactly what the separate unary kernel would.
#ifndef LOOM_EPILOGUE_GLSL
#define LOOM_EPILOGUE_GLSL
#include "codes.h"
#include "math.glsl"
#include "ew_unary.glsl"

float loom_epi(uint code, float v, float p, float q)
{
    switch (code) {
    case LOOM_EPI_RELU: return op_relu(v, p, q);
    case LOOM_EPI_GELU: return op_gelu(v, p, q);
    case LOOM_EPI_TANH: return op_tanh(v, p, q);
    case LOOM_EPI_SIGMOID: return op_sigmoid(v, p, q);
    case LOOM_EPI_SILU: return op_silu(v, p, q);
    default: return v;
    }
}

// dy * f'(y), for the activations whose derivative reads their output
float loom_depi(uint code, float dy, float y, float p, float q)
{
    switch (code) {
    case LOOM_EPI_RELU: return d_relu(dy, y, p, q);
    case LOOM_EPI_TANH: return d_tanh(dy, y, p, q);
    case LOOM_EPI_SIGMOID: return d_sigmoid(dy, y, p, q);
    default: return dy;
    }
}

#endif
