/* Custom GLSL kernels (loom_custom_op): compiled with libshaderc when a
 * program is prepared, kept per device by the hash of their source (so a
 * second program with the same kernel compiles nothing), and dispatched
 * like the built-in ones. */
#include "vk_internal.h"

#include <shaderc/shaderc.h>
#include <string.h>

typedef struct vk_custom {
    uint64_t hash;
    size_t src_len;
    vk_shader sh;
    uint32_t *code;
    size_t words;
    char kinds[LOOM_CUSTOM_MAX_INPUTS + 2];
    char name[80];
} vk_custom;

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

void vk_customs_destroy(vk_dev *d)
{
    for (int i = 0; i < d->ncustom; i++) {
        vk_custom *c = d->customs[i];
        loom_free(d->ctx, c->code, c->words * 4);
        loom_free(d->ctx, c, sizeof *c);
    }
    loom_free(d->ctx, d->customs, (size_t)d->capcustom * sizeof *d->customs);
    d->customs = NULL;
    d->ncustom = d->capcustom = 0;
}

/* The shader of a custom node, compiled on first use; LOOM_E_INVALID with
 * the compiler's messages when the GLSL does not compile. */
static loom_status custom_shader(vk_dev *d, const loom_exec_node *x, const vk_shader **out)
{
    const char *src = x->node->data;
    size_t len = strlen(src);
    uint64_t h = fnv1a(src, len);
    int nbind = x->nin + 1;
    for (int i = 0; i < d->ncustom; i++) {
        vk_custom *c = d->customs[i];
        if (c->hash == h && c->src_len == len && (int)strlen(c->kinds) == nbind) {
            *out = &c->sh;
            return LOOM_OK;
        }
    }
    if (d->ncustom == d->capcustom) {
        int ncap = d->capcustom ? 2 * d->capcustom : 8;
        vk_custom **nc = loom_realloc(d->ctx, d->customs, (size_t)d->capcustom * sizeof *nc, (size_t)ncap * sizeof *nc);
        if (!nc)
            return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory for custom kernels", d->info->spec);
        d->customs = nc;
        d->capcustom = ncap;
    }
    shaderc_compiler_t compiler = shaderc_compiler_initialize();
    shaderc_compile_options_t opts = shaderc_compile_options_initialize();
    if (!compiler || !opts) {
        shaderc_compile_options_release(opts);
        shaderc_compiler_release(compiler);
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: cannot start the GLSL compiler for custom op \"%s\"", d->info->spec,
                         x->node->name);
    }
    shaderc_compile_options_set_target_env(opts, shaderc_target_env_vulkan, shaderc_env_version_vulkan_1_1);
    shaderc_compile_options_set_optimization_level(opts, shaderc_optimization_level_performance);
    shaderc_compilation_result_t res =
        shaderc_compile_into_spv(compiler, src, len, shaderc_compute_shader, x->node->name, "main", opts);
    loom_status s = LOOM_OK;
    vk_custom *c = NULL;
    if (!res || shaderc_result_get_compilation_status(res) != shaderc_compilation_status_success) {
        s = loom_fail(d->ctx, LOOM_E_INVALID, "custom op \"%s\" on %s: the GLSL does not compile:\n%s", x->node->name,
                      d->info->spec, res ? shaderc_result_get_error_message(res) : "(no result from shaderc)");
    } else if (!(c = loom_calloc(d->ctx, 1, sizeof *c)) ||
               !(c->code = loom_malloc(d->ctx, shaderc_result_get_length(res)))) {
        s = loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory for custom op \"%s\"", d->info->spec, x->node->name);
    } else {
        c->words = shaderc_result_get_length(res) / 4;
        memcpy(c->code, shaderc_result_get_bytes(res), c->words * 4);
        c->hash = h;
        c->src_len = len;
        memset(c->kinds, 'S', (size_t)nbind);
        c->kinds[nbind] = '\0';
        snprintf(c->name, sizeof c->name, "custom:%.64s", x->node->name);
        c->sh = (vk_shader){c->name, c->code, &c->words, c->kinds, sizeof(loom_pc_custom), {0, 0}};
        d->customs[d->ncustom++] = c;
        *out = &c->sh;
    }
    if (s != LOOM_OK && c) {
        loom_free(d->ctx, c->code, c->code ? shaderc_result_get_length(res) : 0);
        loom_free(d->ctx, c, sizeof *c);
    }
    shaderc_result_release(res);
    shaderc_compile_options_release(opts);
    shaderc_compiler_release(compiler);
    return s;
}

loom_status vk_plan_custom(vk_prog *p, const loom_exec_node *x)
{
    const vk_shader *sh = NULL;
    LOOM_TRY(custom_shader(p->d, x, &sh));
    loom_pc_custom pc = {{0}};
    pc.n[0] = (uint32_t)x->node->numel;
    for (int i = 0; i < x->nin; i++)
        pc.n[1 + i] = (uint32_t)x->in[i]->node->numel;
    vk_dispatch *dx;
    LOOM_TRY(vk_add_dispatch(p, x->index, &dx));
    dx->nbind = x->nin + 1;
    for (int i = 0; i < x->nin; i++) {
        const vk_buf *vb = x->in[i]->mem.buf;
        dx->bind[i] = (vk_bind){vb->block->buf, vb->offset + x->in[i]->mem.offset, x->in[i]->mem.bytes, 0, VK_READ, 0};
    }
    const vk_buf *ob = x->out->mem.buf;
    dx->bind[x->nin] = (vk_bind){ob->block->buf, ob->offset + x->out->mem.offset, x->out->mem.bytes, 0, VK_WRITE, 0};
    const uint32_t *g = x->node->attr.groups;
    for (int i = 0; i < 3; i++) {
        if (g[i] > p->d->lim->max_groups[i])
            return loom_fail(p->d->ctx, LOOM_E_UNSUPPORTED,
                             "custom op \"%s\" on %s: %u workgroups along dim %d, the device allows %u", x->node->name,
                             p->d->info->spec, g[i], i, p->d->lim->max_groups[i]);
        dx->groups[i] = g[i];
    }
    dx->push_size = sh->push_size;
    memcpy(dx->push, &pc, sizeof pc);
    uint32_t spec[VK_MAX_SPEC] = {0, 0, 0};
    return vk_pipe_get(p->d, sh, spec, &dx->pipe);
}
