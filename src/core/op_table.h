/*
 * The op table: one definition per op, plain data. Names, shape rules, the
 * planner's in-place rule, autodiff, profiling figures, the per-run values
 * and every backend's kernel lookup read it; nothing else switches over the
 * op id. A backend keys its kernels by family (and dtype), and within a
 * family tells variants apart by the op's code (shaders/codes.h) or, for
 * the element-wise families, by the op's name.
 *
 * Dtype traits live here too: what a dtype is, not `if (dt == LOOM_F16)`.
 */
#ifndef LOOM_OP_TABLE_H
#define LOOM_OP_TABLE_H

#include "ir.h"
#include "codes.h"

typedef enum loom_op_family {
    LOOM_FAM_NONE = 0,
    LOOM_FAM_LEAF,         /* input, param, const: nothing runs */
    LOOM_FAM_UNARY,        /* y = f(x; p1, p2), kernel variant by op name */
    LOOM_FAM_UNARY_GRAD,   /* dx = dy f'(v), variant by the forward op's name */
    LOOM_FAM_BINARY,       /* y = f(a, b) broadcasting, variant by op name */
    LOOM_FAM_BINARY_GRAD,  /* dy df/da or df/db at the output's shape */
    LOOM_FAM_WHERE,
    LOOM_FAM_CAST,
    LOOM_FAM_MATMUL,
    LOOM_FAM_GATHER,       /* copy, expand, transpose (code LOOM_GATHER_*) */
    LOOM_FAM_SOFTMAX,      /* code LOOM_SOFTMAX_* */
    LOOM_FAM_SOFTMAX_GRAD, /* code LOOM_SOFTMAX_* */
    LOOM_FAM_REDUCE,       /* code LOOM_REDUCE_* */
    LOOM_FAM_ARG_REDUCE,   /* argmax, argmin: code LOOM_ARG_* */
    LOOM_FAM_ARG_GRAD,     /* gradients of max / min: code LOOM_ARG_* */
    LOOM_FAM_XENT,
    LOOM_FAM_XENT_GRAD,
    LOOM_FAM_DROPOUT,
    LOOM_FAM_SUMSQ,
    LOOM_FAM_RUN_VALUE,    /* the loss scale */
    LOOM_FAM_SGD,
    LOOM_FAM_ADAM,
    LOOM_FAM_EMA,
    LOOM_FAM_CUSTOM,
    LOOM_FAM_CONV,         /* conv2d and its gradients: code LOOM_CONV_* */
    LOOM_FAM_POOL,         /* code LOOM_POOL_* */
    LOOM_FAM_POOL_GRAD,    /* code LOOM_POOL_* */
    LOOM_FAM_NORM,         /* batch / group norm: code LOOM_NORM_* */
    LOOM_FAM_NORM_UPDATE,  /* running statistics */
    LOOM_FAM_WINDOW,       /* slice, pad and their gradients: code LOOM_WINDOW_* */
    LOOM_FAM_CONCAT,
    LOOM_FAM_BMM,          /* batched matmul */
    LOOM_FAM_LNORM,         /* layer norm, RMS norm: code LOOM_LNORM_* */
    LOOM_FAM_LNORM_GRAD,    /* their dx: code LOOM_LNORM_* */
    LOOM_FAM_TAKE,         /* take (embedding), gather: code LOOM_INDEX_* */
    LOOM_FAM_SCATTER,      /* their gradients: code LOOM_INDEX_* */
    LOOM_FAM_ROPE,
    LOOM_FAM_ATTENTION,    /* fused attention and its backward: code LOOM_ATTN_* */
    LOOM_FAM_QUANT,        /* quantize, dequantize: code LOOM_QUANT_* */
    LOOM_FAM_QMATMUL,      /* int8 GEMM, i32 accumulation, fused requantize */
    LOOM_FAM_QCONV,        /* int8 convolution, the same epilogue */
    LOOM_FAM_MASK,         /* pruning masks applied to parameters in place */
    LOOM_FAM_COUNT
} loom_op_family;

/* flags of an op */
enum {
    LOOM_OPF_INPLACE = 1u << 0,  /* out[i] depends on in[k][i] only: the planner
                                   may let it write over a dying input */
    LOOM_OPF_UPDATE = 1u << 1,   /* writes state tensors, no output */
    LOOM_OPF_NONDIFF = 1u << 2,  /* not differentiable: no gradient flows */
    LOOM_OPF_FROM_Y = 1u << 3,   /* unary: the derivative reads the output */
    LOOM_OPF_LABELS = 1u << 4,   /* input index_in holds indices (class labels,
                                   rows of a table) checked on the host */
    LOOM_OPF_NO_GRAD = 1u << 5,  /* no gradient rule: loom_backward through it
                                   is LOOM_E_UNSUPPORTED naming it */
    LOOM_OPF_MULTI = 1u << 6,    /* an optimizer update: the fusion pass groups
                                   consecutive ones into one multi-tensor launch */
};

/* per-run values an op consumes (filled into its run slot) */
enum {
    LOOM_RUN_STEP = 1u << 0,     /* step, lr */
    LOOM_RUN_ADAM = 1u << 1,     /* alpha */
    LOOM_RUN_EMA = 1u << 2,      /* decay */
    LOOM_RUN_SCALE = 1u << 3,    /* loss_scale, inv_scale */
    LOOM_RUN_DROPOUT = 1u << 4,  /* h0 */
};

/* How an op's output shape follows from its inputs, for the constructors
 * that are generated from the table. */
typedef enum loom_shape_rule {
    LOOM_SHAPE_OWN = 0,        /* the op's own constructor computes it */
    LOOM_SHAPE_SAME,           /* the first input's */
    LOOM_SHAPE_BROADCAST       /* numpy broadcasting of every input */
} loom_shape_rule;

struct loom_exec_node;

/* Appends the gradient of node `self` given dy and accumulates it into
 * each input's gradient (loom_grad_accumulate in autodiff.c). */
typedef void (*loom_grad_rule)(loom_graph *g, int32_t self, loom_tensor dy);
/* FLOPs of one run of the node; NULL: flops per element x output size. */
typedef double (*loom_cost_fn)(const struct loom_exec_node *x);

typedef struct loom_op_def {
    const char *name;          /* also the kernel variant's name (element-wise) */
    loom_op_family family;
    int8_t arity;              /* inputs; -1 any number */
    uint8_t shape;             /* loom_shape_rule */
    uint8_t code;              /* variant within the family (shaders/codes.h) */
    uint16_t flags;            /* LOOM_OPF_* */
    uint8_t runvals;           /* LOOM_RUN_*: the node gets a run slot */
    uint8_t writes;            /* updates: bit k set if in[k] is written */
    float flops;               /* per output element */
    loom_cost_fn cost;         /* when flops per element is not the measure */
    loom_grad_rule grad;       /* NULL with LOOM_OPF_NONDIFF / NO_GRAD, or for leaves */
    int8_t unary_params;       /* unary ops: 0, 1 or 2 float parameters */
    const char *gpu_reason;    /* why a GPU backend may have no kernel; NULL: it must */
    /* LOOM_OPF_LABELS ops: the input that holds i32 indices, what they are
     * called in messages ("label", "index"), and the bound they must lie
     * below, from the node and its inputs' nodes. Indices from the host
     * are checked against it (src/core/program.c). */
    int8_t index_in;
    const char *index_what;
    int64_t (*index_bound)(const loom_node *nd, const loom_node *const *ins);
} loom_op_def;

extern const loom_op_def loom_op_defs[LOOM_OP_COUNT];

static inline const loom_op_def *loom_op_def_of(loom_op op)
{
    return &loom_op_defs[(unsigned)op < LOOM_OP_COUNT ? op : LOOM_OP_NONE];
}

const char *loom_op_name(loom_op op);
/* The GEMM epilogue code of a unary op (LOOM_EPI_*), LOOM_EPI_NONE if a
 * GEMM cannot apply it. */
int loom_op_epilogue(loom_op op);
/* The op of that name (one of the table's), LOOM_OP_NONE if none. */
loom_op loom_op_by_name(const char *name);

/* ---- dtype traits --------------------------------------------------------- */

typedef struct loom_dtype_traits {
    const char *name;          /* "f32": also the kernel variants' suffix */
    uint8_t size;              /* bytes per block */
    uint8_t block;             /* elements per block (1 unless quantized) */
    uint8_t is_float;
    uint8_t is_int;
    uint8_t half;              /* a 16-bit float stored, computed in accum */
    loom_dtype accum;          /* what its arithmetic accumulates in */
    uint8_t scales;            /* quantized: bytes of scale per block (0) */
    /* integer dtypes that hold quantized values: their range (saturation),
     * 0 and 0 otherwise; their scales and zero points are tensors of the
     * graph (qp of the int8 ops, include/loom.h), per tensor or per channel */
    int32_t qmin, qmax;
    const char *safetensors;   /* the safetensors dtype string */
} loom_dtype_traits;

extern const loom_dtype_traits loom_dtypes[LOOM_DTYPE_COUNT];

static inline const loom_dtype_traits *loom_dtype_traits_of(loom_dtype dt)
{
    return &loom_dtypes[(unsigned)dt < LOOM_DTYPE_COUNT ? dt : LOOM_F32];
}

/* The dtypes a float kernel family is generated for, as a bit mask. */
#define LOOM_DT_BIT(dt) (1u << (dt))
#define LOOM_DT_FLOATS (LOOM_DT_BIT(LOOM_F32) | LOOM_DT_BIT(LOOM_F16) | LOOM_DT_BIT(LOOM_BF16))

/* f32 <-> f16 / bf16, round to nearest even (NaN stays NaN): the CPU's
 * conversions, which the GPU kernels match. */
uint16_t loom_f32_to_f16(float f);
float loom_f16_to_f32(uint16_t h);
uint16_t loom_f32_to_bf16(float f);
float loom_bf16_to_f32(uint16_t b);

#endif
