/* The GEMM database shipped in the source (src/backends/opencl/gemm_db.json,
 * embedded by the build; its format is described in gemm_db.md): for the
 * devices loom has measured, the parameters of its own GEMM per shape
 * class, which sizes go to CLBlast instead, and CLBlast's own parameters
 * where loom knows better ones than CLBlast's database (CPU drivers; the
 * vendor GPUs are CLBlast's own business). Applied when a device opens, so
 * a new user runs tuned GEMMs without `loom tune`; a set that `loom tune`
 * stored for the device overrides it (cl_gemm.c).
 *
 * LOOM_OPENCL_GEMM=clblast sends every GEMM to CLBlast with CLBlast's own
 * parameters, as before this database (`loom bench` measures CLBlast's
 * defaults that way); =own sends every GEMM to loom's kernel. */
#include "cl_internal.h"
#include "cl_kernels.h"

#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DB_FORMAT "loom opencl gemm database"
#define DB_VERSION 1

static const char *db_text(void)
{
    for (int i = 0; i < loom_cl_source_count; i++)
        if (!strcmp(loom_cl_sources[i].name, "gemm_db.json"))
            return loom_cl_sources[i].text;
    return NULL;
}

static int has_text(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (!strncasecmp(hay, needle, n))
            return 1;
    return n == 0;
}

static const char *type_name(cl_device_type t)
{
    return (t & CL_DEVICE_TYPE_GPU) ? "gpu" : (t & CL_DEVICE_TYPE_CPU) ? "cpu"
           : (t & CL_DEVICE_TYPE_ACCELERATOR) ? "accelerator" : "other";
}

/* Does the entry's "match" hold for the device? -1 (and a message) when the
 * section itself is broken. Every key must hold: platform and vendor are
 * substrings (any case), name a shell pattern of the device name, type
 * cpu / gpu / accelerator, float_width the native float vector width (16
 * for AVX-512, 8 for AVX2), extensions device extensions that must all be
 * present. */
static int matches(cl_dev *d, const cJSON *m, const char *id)
{
    if (!cJSON_IsObject(m)) {
        loom_fail(d->ctx, LOOM_E_INVALID, "%s: GEMM database entry \"%s\": \"match\" is not an object", d->label, id);
        return -1;
    }
    cl_device_type type = 0;
    cl_uint width = 0;
    clGetDeviceInfo(d->id, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    clGetDeviceInfo(d->id, CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT, sizeof width, &width, NULL);
    int all = 1;
    const cJSON *it;
    cJSON_ArrayForEach(it, m)
    {
        const char *key = it->string;
        if (!strcmp(key, "float_width")) {
            if (!cJSON_IsNumber(it)) {
                loom_fail(d->ctx, LOOM_E_INVALID, "%s: GEMM database entry \"%s\": match.float_width is not a number",
                          d->label, id);
                return -1;
            }
            all &= (double)width == it->valuedouble;
        } else if (!strcmp(key, "extensions")) {
            if (!cJSON_IsArray(it)) {
                loom_fail(d->ctx, LOOM_E_INVALID,
                          "%s: GEMM database entry \"%s\": match.extensions is not an array of names", d->label, id);
                return -1;
            }
            char ext[8192] = "";
            clGetDeviceInfo(d->id, CL_DEVICE_EXTENSIONS, sizeof ext - 1, ext, NULL);
            const cJSON *e;
            cJSON_ArrayForEach(e, it)
            {
                if (!cJSON_IsString(e)) {
                    loom_fail(d->ctx, LOOM_E_INVALID,
                              "%s: GEMM database entry \"%s\": match.extensions holds a non-string", d->label, id);
                    return -1;
                }
                all &= strstr(ext, e->valuestring) != NULL;
            }
        } else if (!strcmp(key, "platform") || !strcmp(key, "vendor") || !strcmp(key, "name") ||
                   !strcmp(key, "type")) {
            if (!cJSON_IsString(it)) {
                loom_fail(d->ctx, LOOM_E_INVALID, "%s: GEMM database entry \"%s\": match.%s is not a string", d->label,
                          id, key);
                return -1;
            }
            const char *v = it->valuestring;
            if (!strcmp(key, "platform"))
                all &= has_text(d->lim.platform, v);
            else if (!strcmp(key, "vendor"))
                all &= has_text(d->lim.vendor, v);
            else if (!strcmp(key, "name"))
                all &= fnmatch(v, d->lim.name, 0) == 0;
            else
                all &= !strcmp(v, type_name(type));
        } else if (key[0] != '_') {
            loom_fail(d->ctx, LOOM_E_INVALID,
                      "%s: GEMM database entry \"%s\": unknown match key \"%s\" (platform, vendor, name, type, "
                      "float_width, extensions)",
                      d->label, id, key);
            return -1;
        }
    }
    return all;
}

/* The entry's CLBlast section, through the parser of stored sets. */
static loom_status clblast_of(cl_dev *d, const cJSON *sec, const char *id, cl_gemm_params *p)
{
    memset(p, 0, sizeof *p);
    if (!sec || cJSON_IsNull(sec))
        return LOOM_OK;
    if (!cJSON_IsObject(sec))
        return loom_fail(d->ctx, LOOM_E_INVALID, "%s: GEMM database entry \"%s\": \"clblast\" is not an object",
                         d->label, id);
    char *text = cJSON_PrintUnformatted(sec);
    if (!text)
        return loom_fail(d->ctx, LOOM_E_OOM, "%s: out of memory", d->label);
    int use_default = 0;
    loom_status s = loom_cl_gemm_parse(d, text, p, &use_default, NULL, NULL);
    cJSON_free(text);
    if (s == LOOM_OK && use_default)
        memset(p, 0, sizeof *p);
    if (s == LOOM_OK)
        s = loom_cl_gemm_check(d, p);
    if (s != LOOM_OK) {
        char msg[LOOM_ERRMSG];
        snprintf(msg, sizeof msg, "%s", loom_last_error(d->ctx));
        return loom_fail(d->ctx, s, "GEMM database entry \"%s\": %s", id, msg);
    }
    return LOOM_OK;
}

loom_status loom_cl_gemm_db_lookup(cl_dev *d, const char *text, int *found, char *entry, size_t entry_n,
                                   cl_gemm_choice choice[LOOM_CLG_COUNT], cl_gemm_params *clblast)
{
    *found = 0;
    if (entry_n)
        entry[0] = 0;
    memset(clblast, 0, sizeof *clblast);
    cJSON *root = cJSON_Parse(text);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        return loom_fail(d->ctx, LOOM_E_FORMAT, "%s: the GEMM database is not valid JSON (near \"%.30s\")", d->label,
                         at ? at : "?");
    }
    loom_status s = LOOM_OK;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    const cJSON *devs = cJSON_GetObjectItemCaseSensitive(root, "devices");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, DB_FORMAT) || !cJSON_IsNumber(ver) ||
        ver->valuedouble != DB_VERSION) {
        s = loom_fail(d->ctx, LOOM_E_FORMAT, "%s: the GEMM database is not \"%s\" version %d", d->label, DB_FORMAT,
                      DB_VERSION);
        goto out;
    }
    if (!cJSON_IsArray(devs)) {
        s = loom_fail(d->ctx, LOOM_E_FORMAT, "%s: the GEMM database has no \"devices\" array", d->label);
        goto out;
    }
    int idx = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, devs)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        char name[64];
        snprintf(name, sizeof name, "#%d", idx++);
        if (cJSON_IsString(id))
            snprintf(name, sizeof name, "%s", id->valuestring);
        if (!cJSON_IsObject(e) || !cJSON_IsString(id)) {
            s = loom_fail(d->ctx, LOOM_E_INVALID, "%s: GEMM database entry %s is not an object with an \"id\"",
                          d->label, name);
            goto out;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, e)
        {
            static const char *const keys[] = {"id", "match", "own", "clblast", "measured"};
            int known = it->string[0] == '_';
            for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
                known |= !strcmp(it->string, keys[k]);
            if (!known) {
                s = loom_fail(d->ctx, LOOM_E_INVALID,
                              "%s: GEMM database entry \"%s\": unknown key \"%s\" (id, match, own, clblast, measured)",
                              d->label, name, it->string);
                goto out;
            }
        }
        int m = matches(d, cJSON_GetObjectItemCaseSensitive(e, "match"), name);
        if (m < 0) {
            s = LOOM_E_INVALID;
            goto out;
        }
        if (!m)
            continue;
        /* the first entry that matches is the device's */
        cl_gemm_choice c[LOOM_CLG_COUNT];
        loom_cl_own_default(d, c);
        const cJSON *own = cJSON_GetObjectItemCaseSensitive(e, "own");
        char what[96];
        snprintf(what, sizeof what, "GEMM database entry \"%s\"", name);
        if (own && (s = loom_cl_choice_parse(d, own, c, what)) != LOOM_OK)
            goto out;
        if ((s = clblast_of(d, cJSON_GetObjectItemCaseSensitive(e, "clblast"), name, clblast)) != LOOM_OK)
            goto out;
        memcpy(choice, c, sizeof c);
        snprintf(entry, entry_n, "%s", name);
        *found = 1;
        break;
    }
out:
    cJSON_Delete(root);
    return s;
}

void loom_cl_gemm_db_apply(cl_dev *d)
{
    loom_cl_own_default(d, d->choice);
    d->route = LOOM_CLR_AUTO;
    const char *env = getenv("LOOM_OPENCL_GEMM");
    if (env && *env) {
        if (!strcmp(env, "clblast"))
            d->route = LOOM_CLR_CLBLAST;
        else if (!strcmp(env, "own"))
            d->route = LOOM_CLR_OWN;
        else if (strcmp(env, "auto"))
            loom_logf(d->ctx, LOOM_LOG_WARN, "%s: LOOM_OPENCL_GEMM=%s is not auto, own or clblast; auto it is",
                      d->label, env);
    }
    if (d->route == LOOM_CLR_CLBLAST) {
        loom_logf(d->ctx, LOOM_LOG_INFO, "%s: LOOM_OPENCL_GEMM=clblast: CLBlast with its own parameters", d->label);
        return;
    }
    const char *text = db_text();
    int found = 0;
    cl_gemm_choice c[LOOM_CLG_COUNT];
    cl_gemm_params clb;
    loom_status s = text ? loom_cl_gemm_db_lookup(d, text, &found, d->db_entry, sizeof d->db_entry, c, &clb)
                         : loom_fail(d->ctx, LOOM_E_FORMAT, "%s: no GEMM database in this build", d->label);
    if (s != LOOM_OK) {
        loom_logf(d->ctx, LOOM_LOG_WARN, "%s: ignoring the GEMM database: %s", d->label, loom_last_error(d->ctx));
        loom_clear_error(d->ctx);
        d->db_entry[0] = 0;
        return;
    }
    if (!found) {
        loom_logf(d->ctx, LOOM_LOG_INFO,
                  "%s: no GEMM database entry for this device: CLBlast's own parameters, loom's GEMM with defaults "
                  "for a %s",
                  d->label, d->choice[0].clblast_from ? "GPU" : "CPU");
        return;
    }
    memcpy(d->choice, c, sizeof c);
    if (clb.has_xgemm || clb.has_direct || clb.has_routine) {
        s = loom_cl_gemm_apply(d, &clb);
        if (s != LOOM_OK) {
            loom_logf(d->ctx, LOOM_LOG_WARN, "%s: the CLBlast parameters of GEMM database entry \"%s\" were refused: %s",
                      d->label, d->db_entry, loom_last_error(d->ctx));
            loom_clear_error(d->ctx);
        }
    }
    snprintf(d->gemm_source, sizeof d->gemm_source, "the GEMM database (entry \"%s\")", d->db_entry);
    loom_logf(d->ctx, LOOM_LOG_INFO, "%s: GEMM parameters from the database entry \"%s\"", d->label, d->db_entry);
}
