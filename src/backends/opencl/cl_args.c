/* Kernel arguments, set once at prepare by every family's planner
 * (cl_launch.c, cl_conv.c, cl_seq.c): the first failure is kept with the
 * argument's index, and named with the kernel and the op when the
 * arguments are done. */
#include "cl_internal.h"

#include <assert.h>

void loom_cl_arg(cl_args *a, size_t n, const void *v)
{
    cl_int e = clSetKernelArg(a->k, a->i, n, v);
    if (e != CL_SUCCESS && a->err == CL_SUCCESS) {
        a->err = e;
        a->bad = a->i;
    }
    a->i++;
}

void loom_cl_arg_u32(cl_args *a, cl_uint v)
{
    loom_cl_arg(a, sizeof v, &v);
}

void loom_cl_arg_f32(cl_args *a, cl_float v)
{
    loom_cl_arg(a, sizeof v, &v);
}

cl_mem loom_cl_tensor_mem(const loom_exec_tensor *t)
{
    return loom_cl_block_mem(((const cl_buf *)t->mem.buf)->block);
}

cl_uint loom_cl_elem_off(const loom_exec_tensor *t)
{
    uint64_t es = loom_dtype_size(t->node->dtype);
    uint64_t bytes = ((const cl_buf *)t->mem.buf)->offset + t->mem.offset;
    assert(bytes % es == 0 && bytes / es <= 0xffffffffu);
    return (cl_uint)(bytes / es);
}

void loom_cl_arg_tensor(cl_args *a, const loom_exec_tensor *t)
{
    cl_mem m = loom_cl_tensor_mem(t);
    loom_cl_arg(a, sizeof m, &m);
    loom_cl_arg_u32(a, loom_cl_elem_off(t));
}

loom_status loom_cl_args_done(const cl_args *a, const loom_exec_node *x, const char *kname)
{
    if (a->err == CL_SUCCESS)
        return LOOM_OK;
    return loom_cl_fail(a->d, a->err, "clSetKernelArg", "argument %u of kernel %s for op %s (\"%s\")", a->bad, kname,
                        loom_op_name(x->node->op), x->node->name);
}

size_t loom_cl_round_up(size_t v, size_t m)
{
    return (v + m - 1) / m * m;
}

const char *loom_cl_dtype_variant(loom_dtype dt)
{
    return dt == LOOM_F16 ? "-DLOOM_F16" : dt == LOOM_BF16 ? "-DLOOM_BF16" : "";
}

loom_status loom_cl_make_kernel(cl_dev *d, cl_progid p, const char *variant, const char *name,
                                const loom_exec_node *x, cl_launch *l, cl_args *a)
{
    cl_program prog;
    LOOM_TRY(loom_cl_program(d, p, variant, &prog));
    cl_int e = CL_SUCCESS;
    l->kernel = clCreateKernel(prog, name, &e);
    if (e != CL_SUCCESS)
        return loom_cl_fail(d, e, "clCreateKernel", "kernel %s for op %s (\"%s\")", name, loom_op_name(x->node->op),
                            x->node->name);
    l->kind = LOOM_CLL_KERNEL;
    *a = (cl_args){d, l->kernel, 0, CL_SUCCESS, 0};
    return LOOM_OK;
}
