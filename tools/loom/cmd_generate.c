/* loom generate: text sampled from a saved character-level language model
 * (a Sequential model whose first layer is an embedding that names its
 * tokens' bytes, and whose output is a distribution over them at every
 * position of its window: examples/char_lm.c). Each new character is
 * drawn from the softmax of the last position's logits over temperature,
 * among the top k; temperature 0 takes the most likely. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { O_MODEL = CLI_OPT_BASE, O_PROMPT, O_LENGTH, O_TEMPERATURE, O_TOP_K, O_SEED, O_DEVICE, O_JSON };

static const struct option opts[] = {
    {"model", required_argument, 0, O_MODEL},
    {"prompt", required_argument, 0, O_PROMPT},
    {"length", required_argument, 0, O_LENGTH},
    {"temperature", required_argument, 0, O_TEMPERATURE},
    {"top-k", required_argument, 0, O_TOP_K},
    {"seed", required_argument, 0, O_SEED},
    {"device", required_argument, 0, O_DEVICE},
    {"json", no_argument, 0, O_JSON},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

/* The model's window and its tokens' bytes, from its architecture. */
static int read_vocab(const char *arch, const char *path, int64_t *window, unsigned char *tokens, int *ntokens)
{
    cJSON *root = cJSON_Parse(arch);
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "input");
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    const cJSON *first = cJSON_GetArrayItem(layers, 0);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(first, "tokens");
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "type"));
    int ok = cJSON_IsNumber(in) && type && !strcmp(type, "embedding") && cJSON_IsArray(t) &&
             cJSON_GetArraySize(t) > 0 && cJSON_GetArraySize(t) <= 256;
    if (ok) {
        *window = (int64_t)in->valuedouble;
        *ntokens = cJSON_GetArraySize(t);
        for (int i = 0; i < *ntokens; i++)
            tokens[i] = (unsigned char)cJSON_GetArrayItem(t, i)->valuedouble;
    }
    cJSON_Delete(root);
    if (!ok)
        fprintf(stderr, "loom generate: %s is not a character-level language model (its first layer is not an "
                "embedding that lists its tokens' bytes)\n", path);
    return ok;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A token from logits z [v]: the largest at temperature 0, else drawn from
 * softmax(z / temperature) over the top_k largest (0: all). */
static int sample(const float *z, int v, double temperature, int top_k, uint64_t *rng)
{
    int order[256];
    for (int i = 0; i < v; i++)
        order[i] = i;
    /* by logit, largest first (v <= 256: a plain insertion sort) */
    for (int i = 1; i < v; i++)
        for (int j = i; j > 0 && z[order[j]] > z[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    if (temperature <= 0)
        return order[0];
    int k = top_k > 0 && top_k < v ? top_k : v;
    double p[256], sum = 0;
    for (int i = 0; i < k; i++) {
        p[i] = exp(((double)z[order[i]] - (double)z[order[0]]) / temperature);
        sum += p[i];
    }
    double u = (double)(splitmix(rng) >> 11) * (1.0 / 9007199254740992.0) * sum;
    for (int i = 0; i < k; i++) {
        if (u < p[i])
            return order[i];
        u -= p[i];
    }
    return order[k - 1];
}

int cmd_generate(int argc, char **argv)
{
    const char *model = NULL, *prompt = "", *spec = "auto";
    int64_t length = 200, top_k = 0, seed = 1;
    double temperature = 1.0;
    int json = 0;
    cli_args a = cli_args_init("generate", argc, argv, opts);
    for (int c; (c = cli_next(&a)) != -1;) {
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_PROMPT: prompt = optarg; break;
        case O_LENGTH:
            if (cli_int(&a, 0, 1 << 20, &length))
                return CLI_EXIT_USAGE;
            break;
        case O_TEMPERATURE:
            if (cli_double(&a, 0, 100, &temperature))
                return CLI_EXIT_USAGE;
            break;
        case O_TOP_K:
            if (cli_int(&a, 0, 256, &top_k))
                return CLI_EXIT_USAGE;
            break;
        case O_SEED:
            if (cli_int(&a, 0, INT64_MAX, &seed))
                return CLI_EXIT_USAGE;
            break;
        case O_DEVICE: spec = optarg; break;
        case O_JSON: json = 1; break;
        default: return a.rc;
        }
    }
    if (!model)
        return cli_usage_error("generate", "--model FILE is required");
    loom_ctx *ctx = cli_ctx();
    if (!ctx)
        return 1;
    loom_device *dev = NULL;
    loom_sequential *m = NULL;
    float *x = NULL, *logits = NULL;
    unsigned char tokens[256], *text = NULL;
    int ntokens = 0, rc = 1;
    int64_t window = 0;
    if (loom_device_open(ctx, spec, &dev) != LOOM_OK || loom_sequential_load(ctx, model, dev, NULL, &m) != LOOM_OK) {
        fprintf(stderr, "loom generate: %s\n", loom_last_error(ctx));
        goto out;
    }
    if (!read_vocab(loom_sequential_describe(m), model, &window, tokens, &ntokens))
        goto out;
    int64_t outs = loom_sequential_outputs(m);
    if (outs != window * ntokens) {
        fprintf(stderr, "loom generate: %s gives %lld outputs, not %lld positions of %d tokens\n", model,
                (long long)outs, (long long)window, ntokens);
        goto out;
    }
    int id_of[256];
    for (int i = 0; i < 256; i++)
        id_of[i] = -1;
    for (int i = 0; i < ntokens; i++)
        id_of[tokens[i]] = i;
    size_t plen = strlen(prompt), total = plen + (size_t)length;
    int32_t *ids = malloc((total + 1) * sizeof *ids);
    text = malloc(total + 1);
    x = malloc((size_t)window * sizeof *x);
    logits = malloc((size_t)outs * sizeof *logits);
    if (!ids || !text || !x || !logits) {
        free(ids);
        fprintf(stderr, "loom generate: out of memory\n");
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < plen; i++) {
        int id = id_of[(unsigned char)prompt[i]];
        if (id < 0) {
            fprintf(stderr, "loom generate: the prompt's byte 0x%02x at index %zu is not one of the model's %d "
                    "tokens\n", (unsigned char)prompt[i], i, ntokens);
            free(ids);
            goto out;
        }
        ids[n++] = id;
    }
    /* an empty prompt starts from a new line (or the first token) */
    int start = id_of['\n'] >= 0 ? id_of['\n'] : 0;
    int primed = n == 0;
    if (primed)
        ids[n++] = start;
    uint64_t rng = (uint64_t)seed * 0x2545f4914f6cdd1dULL + 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    loom_status s = LOOM_OK;
    for (int64_t k = 0; k < length && s == LOOM_OK; k++) {
        /* the last window of context at the start of the window; the rest
         * (which the causal model's earlier positions never see) is padding */
        size_t from = n > (size_t)window ? n - (size_t)window : 0, used = n - from;
        for (int64_t j = 0; j < window; j++)
            x[j] = (float)((size_t)j < used ? ids[from + (size_t)j] : start);
        s = loom_sequential_predict(m, x, 1, logits);
        if (s == LOOM_OK)
            ids[n++] = sample(logits + (used - 1) * (size_t)ntokens, ntokens, temperature, (int)top_k, &rng);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (s != LOOM_OK) {
        fprintf(stderr, "loom generate: %s\n", loom_last_error(ctx));
        free(ids);
        goto out;
    }
    size_t tl = 0;
    for (size_t i = primed ? 1 : 0; i < n; i++)
        text[tl++] = tokens[ids[i]];
    text[tl] = 0;
    free(ids);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", model);
        cJSON_AddStringToObject(o, "device", loom_device_get(dev)->spec);
        cJSON_AddStringToObject(o, "prompt", prompt);
        cJSON_AddStringToObject(o, "text", (const char *)text);
        cJSON_AddNumberToObject(o, "generated", (double)length);
        cJSON_AddNumberToObject(o, "temperature", temperature);
        cJSON_AddNumberToObject(o, "top_k", (double)top_k);
        cJSON_AddNumberToObject(o, "seed", (double)seed);
        cJSON_AddItemToObject(o, "tokens_per_s", cli_json_number(secs > 0 ? (double)length / secs : NAN));
        if (cli_print_json(o))
            goto out;
    } else {
        fwrite(text, 1, tl, stdout);
        fputc('\n', stdout);
        fprintf(stderr, "loom generate: %lld characters in %.2f s on %s\n", (long long)length, secs,
                loom_device_get(dev)->spec);
    }
    rc = 0;
out:
    free(x);
    free(logits);
    free(text);
    loom_sequential_destroy(m);
    loom_device_close(dev);
    return cli_finish(ctx, "generate", rc);
}
