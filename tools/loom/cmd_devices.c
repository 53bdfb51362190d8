/* loom devices [--json] */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

static const char *type_name(loom_device_type t)
{
    static const char *n[] = {"discrete", "integrated", "virtual", "cpu", "other"};
    return (unsigned)t <= LOOM_DEVICE_OTHER ? n[t] : "other";
}

static const char *backend_name(loom_backend_kind b)
{
    static const char *n[] = {"cpu", "vulkan", "opencl"};
    return (unsigned)b < LOOM_BACKEND_COUNT ? n[b] : "?";
}

enum { O_JSON = CLI_OPT_BASE };

static const struct option opts[] = {
    {"json", no_argument, 0, O_JSON},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

int cmd_devices(int argc, char **argv)
{
    int json = 0;
    cli_args a = cli_args_init("devices", argc, argv, opts);
    for (int c; (c = cli_next(&a)) != -1;) {
        if (c != O_JSON)
            return a.rc;
        json = 1;
    }
    loom_ctx *ctx = cli_ctx();
    if (!ctx)
        return 1;
    int n = loom_device_count(ctx);
    cJSON *arr = json ? cJSON_CreateArray() : NULL;
    for (int i = 0; i < n; i++) {
        loom_device_info d;
        if (loom_device_get_info(ctx, i, &d) != LOOM_OK)
            continue;
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "spec", d.spec);
            cJSON_AddStringToObject(o, "name", d.name);
            cJSON_AddStringToObject(o, "backend", backend_name(d.backend));
            cJSON_AddStringToObject(o, "vendor", d.vendor);
            cJSON_AddStringToObject(o, "type", type_name(d.type));
            cJSON_AddStringToObject(o, "driver", d.driver);
            cJSON_AddStringToObject(o, "api_version", d.api_version);
            cJSON_AddStringToObject(o, "uuid", d.uuid);
            cJSON_AddBoolToObject(o, "can_run", d.can_run);
            cJSON_AddNumberToObject(o, "memory_bytes", (double)d.memory_bytes);
            cJSON_AddNumberToObject(o, "max_binding_bytes", (double)d.max_binding_bytes);
            cJSON_AddNumberToObject(o, "alignment", d.alignment);
            cJSON_AddNumberToObject(o, "subgroup_size", d.subgroup_size);
            cJSON_AddNumberToObject(o, "max_workgroup_size", d.max_workgroup_size);
            cJSON_AddBoolToObject(o, "fp16", d.fp16);
            cJSON_AddBoolToObject(o, "int8", d.int8);
            cJSON_AddBoolToObject(o, "int8_dot", d.int8_dot);
            cJSON_AddItemToArray(arr, o);
        } else {
            printf("%-10s %-40.40s %-7s %-10s %s\n", d.spec, d.name, backend_name(d.backend), type_name(d.type),
                   d.can_run ? "runs graphs" : "listed only (backend cannot run graphs yet)");
            printf("           vendor %s, driver %s, %s\n", d.vendor, d.driver, d.api_version);
            printf("           memory %.1f GiB, max binding %s%.0f MiB, align %u, subgroup %u, fp16 %s, int8 %s\n",
                   (double)d.memory_bytes / (1 << 30), d.max_binding_bytes ? "" : "(none) ",
                   (double)d.max_binding_bytes / (1 << 20), d.alignment, d.subgroup_size, d.fp16 ? "yes" : "no",
                   d.int8 ? d.int8_dot ? "yes (dot products)" : "yes" : "no");
        }
    }
    int rc = 0;
    if (json)
        rc = cli_print_json(arr);
    loom_device *dev = NULL;
    if (!json) {
        if (loom_device_open(ctx, "auto", &dev) == LOOM_OK) {
            printf("auto -> %s\n", loom_device_get(dev)->spec);
            loom_device_close(dev);
        } else {
            printf("auto -> none: %s\n", loom_last_error(ctx));
        }
    }
    return cli_finish(ctx, "devices", rc);
}
