/*
 * Vendor counters beside our own figures, found at run time: NVML through
 * dlopen on NVIDIA, amdgpu's sysfs files, and the per-client engine time
 * DRM drivers publish in /proc/self/fdinfo (amdgpu, i915). None of them is
 * a build dependency; a machine without them reports every counter absent.
 */
#include "profile.h"
#include "device_registry.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- NVML ---------------------------------------------------------------- */

/* The few NVML entry points used, declared from NVML's documented C ABI so
 * that no NVIDIA header is needed at build time. */
typedef struct nvml_device_st *nvml_device;
typedef struct nvml_util { unsigned int gpu, memory; } nvml_util;
typedef struct nvml_memory { unsigned long long total, free, used; } nvml_memory;

enum { NVML_SUCCESS = 0, NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2, NVML_TEMPERATURE_GPU = 0 };

typedef struct nvml_api {
    void *lib;
    int ok;
    int (*init)(void);
    int (*count)(unsigned int *);
    int (*handle)(unsigned int, nvml_device *);
    int (*uuid)(nvml_device, char *, unsigned int);
    int (*util)(nvml_device, nvml_util *);
    int (*memory)(nvml_device, nvml_memory *);
    int (*clock)(nvml_device, int, unsigned int *);
    int (*temp)(nvml_device, int, unsigned int *);
    int (*power)(nvml_device, unsigned int *);
} nvml_api;

static nvml_api nvml;
static pthread_once_t nvml_once = PTHREAD_ONCE_INIT;

/* dlsym returns an object pointer; ISO C has no cast from it to a function
 * pointer, so the bits are copied. */
static int sym(void *lib, const char *name, void *fnptr, size_t size)
{
    void *p = dlsym(lib, name);
    if (!p)
        return 0;
    memcpy(fnptr, &p, size);
    return 1;
}

static void nvml_load(void)
{
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        return;
    nvml_api a = {0};
    a.lib = lib;
    int ok = sym(lib, "nvmlInit_v2", &a.init, sizeof a.init) &&
             sym(lib, "nvmlDeviceGetCount_v2", &a.count, sizeof a.count) &&
             sym(lib, "nvmlDeviceGetHandleByIndex_v2", &a.handle, sizeof a.handle) &&
             sym(lib, "nvmlDeviceGetUUID", &a.uuid, sizeof a.uuid);
    /* Optional ones stay NULL when an old driver lacks them. */
    sym(lib, "nvmlDeviceGetUtilizationRates", &a.util, sizeof a.util);
    sym(lib, "nvmlDeviceGetMemoryInfo", &a.memory, sizeof a.memory);
    sym(lib, "nvmlDeviceGetClockInfo", &a.clock, sizeof a.clock);
    sym(lib, "nvmlDeviceGetTemperature", &a.temp, sizeof a.temp);
    sym(lib, "nvmlDeviceGetPowerUsage", &a.power, sizeof a.power);
    if (!ok || a.init() != NVML_SUCCESS) {
        dlclose(lib);
        return;
    }
    a.ok = 1;
    nvml = a; /* the library stays loaded for the life of the process */
}

/* Lower-case hex digits only: NVML writes "GPU-xxxxxxxx-xxxx-...", Vulkan
 * and OpenCL give the same 16 bytes as plain hex. */
static void hex_only(const char *s, char *out, size_t n)
{
    size_t k = 0;
    if (!strncmp(s, "GPU-", 4))
        s += 4;
    for (; *s && k + 1 < n; s++)
        if (isxdigit((unsigned char)*s))
            out[k++] = (char)tolower((unsigned char)*s);
    out[k] = 0;
}

int loom_vendor_read_nvml(const char *uuid, loom_vendor_counters *out)
{
    pthread_once(&nvml_once, nvml_load);
    if (!nvml.ok)
        return 0;
    unsigned int n = 0;
    if (nvml.count(&n) != NVML_SUCCESS || n == 0)
        return 0;
    char want[64];
    hex_only(uuid ? uuid : "", want, sizeof want);
    nvml_device dev = NULL;
    for (unsigned int i = 0; i < n && !dev; i++) {
        nvml_device h;
        char u[96], hu[64];
        if (nvml.handle(i, &h) != NVML_SUCCESS)
            continue;
        if (!want[0]) {
            /* Without a UUID only an unambiguous machine is matched. */
            if (n == 1)
                dev = h;
            continue;
        }
        if (nvml.uuid(h, u, sizeof u) == NVML_SUCCESS) {
            hex_only(u, hu, sizeof hu);
            if (!strcmp(hu, want))
                dev = h;
        }
    }
    if (!dev)
        return 0;
    nvml_util ut;
    nvml_memory mem;
    unsigned int v;
    if (nvml.util && nvml.util(dev, &ut) == NVML_SUCCESS)
        out->util_present = 1, out->util_pct = ut.gpu;
    if (nvml.memory && nvml.memory(dev, &mem) == NVML_SUCCESS) {
        out->mem_used_present = 1, out->mem_used_bytes = mem.used;
        out->mem_total_present = 1, out->mem_total_bytes = mem.total;
    }
    if (nvml.clock && nvml.clock(dev, NVML_CLOCK_SM, &v) == NVML_SUCCESS)
        out->clock_present = 1, out->clock_mhz = v;
    if (nvml.clock && nvml.clock(dev, NVML_CLOCK_MEM, &v) == NVML_SUCCESS)
        out->mem_clock_present = 1, out->mem_clock_mhz = v;
    if (nvml.temp && nvml.temp(dev, NVML_TEMPERATURE_GPU, &v) == NVML_SUCCESS)
        out->temp_present = 1, out->temp_c = v;
    if (nvml.power && nvml.power(dev, &v) == NVML_SUCCESS)
        out->power_present = 1, out->power_w = v / 1000.0;
    snprintf(out->source, sizeof out->source, "nvml");
    return 1;
}

/* ---- sysfs and fdinfo ------------------------------------------------------ */

/* snprintf for paths; 0 when the path did not fit (and is not used). */
static int pathf(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return k >= 0 && (size_t)k < n;
}

/* The file's first line (without the newline); 0 if unreadable. */
static int read_line(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int ok = fgets(buf, (int)n, f) != NULL;
    fclose(f);
    if (ok)
        buf[strcspn(buf, "\n")] = 0;
    return ok;
}

static int read_u64(const char *path, uint64_t *v)
{
    char b[64], *end;
    if (!read_line(path, b, sizeof b))
        return 0;
    errno = 0;
    unsigned long long x = strtoull(b, &end, 0);
    if (end == b || errno)
        return 0;
    *v = x;
    return 1;
}

/* amdgpu's pp_dpm_* files list the levels, the current one marked '*':
 * "1: 1800Mhz *". */
static int read_dpm(const char *path, double *mhz)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[128];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (!c || !strchr(line, '*'))
            continue;
        char *end;
        double v = strtod(c + 1, &end);
        if (end != c + 1)
            *mhz = v, found = 1;
    }
    fclose(f);
    return found;
}

static int card_number(const char *name)
{
    if (strncmp(name, "card", 4) || !isdigit((unsigned char)name[4]))
        return -1;
    for (const char *s = name + 4; *s; s++)
        if (!isdigit((unsigned char)*s))
            return -1; /* connectors: "card0-DP-1" */
    return atoi(name + 4);
}

static void read_hwmon(const char *devdir, loom_vendor_counters *out)
{
    char path[PATH_MAX];
    pathf(path, sizeof path, "%s/hwmon", devdir);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "hwmon", 5))
            continue;
        uint64_t v;
        pathf(path, sizeof path, "%s/hwmon/%s/temp1_input", devdir, e->d_name);
        if (!out->temp_present && read_u64(path, &v))
            out->temp_present = 1, out->temp_c = (double)v / 1000.0;
        pathf(path, sizeof path, "%s/hwmon/%s/power1_average", devdir, e->d_name);
        if (!out->power_present && read_u64(path, &v))
            out->power_present = 1, out->power_w = (double)v / 1e6;
        pathf(path, sizeof path, "%s/hwmon/%s/power1_input", devdir, e->d_name);
        if (!out->power_present && read_u64(path, &v))
            out->power_present = 1, out->power_w = (double)v / 1e6;
    }
    closedir(d);
}

/* "123 KiB" and friends, in bytes. */
static uint64_t parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    while (*end == ' ' || *end == '\t')
        end++;
    if (!strncmp(end, "KiB", 3))
        v *= 1024.0;
    else if (!strncmp(end, "MiB", 3))
        v *= 1048576.0;
    else if (!strncmp(end, "GiB", 3))
        v *= 1073741824.0;
    return v > 0 ? (uint64_t)v : 0;
}

static int driver_matches(uint32_t vendor, const char *drv)
{
    if (vendor == 0x1002)
        return !strcmp(drv, "amdgpu");
    if (vendor == 0x8086)
        return !strcmp(drv, "i915");
    return 0;
}

#define MAX_CLIENTS 64

/* Per-client figures from the DRM fdinfo keys (Documentation/gpu/
 * drm-usage-stats.rst): drm-engine-<name>: <ns> ns, drm-memory-vram or
 * drm-resident-<region>. A client opened through several fds is counted
 * once, by its drm-client-id. */
static int read_fdinfo(const char *dir, uint32_t vendor, const char *pdev, loom_vendor_counters *out)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    unsigned long long seen[MAX_CLIENTS];
    int nseen = 0, found = 0;
    double engine = 0;
    uint64_t mem = 0;
    int have_mem = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX];
        pathf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        char line[256], drv[32] = "", dpdev[32] = "";
        unsigned long long client = 0;
        int have_client = 0, cmem_have = 0;
        double ceng = 0;
        uint64_t cmem = 0;
        while (fgets(line, sizeof line, f)) {
            char *c = strchr(line, ':');
            if (!c || strncmp(line, "drm-", 4))
                continue;
            *c++ = 0;
            while (*c == ' ' || *c == '\t')
                c++;
            c[strcspn(c, "\n")] = 0;
            if (!strcmp(line, "drm-driver"))
                snprintf(drv, sizeof drv, "%s", c);
            else if (!strcmp(line, "drm-pdev"))
                snprintf(dpdev, sizeof dpdev, "%s", c);
            else if (!strcmp(line, "drm-client-id"))
                client = strtoull(c, NULL, 10), have_client = 1;
            else if (!strncmp(line, "drm-engine-", 11) && strncmp(line, "drm-engine-capacity-", 20) &&
                     strstr(c, "ns"))
                ceng += strtod(c, NULL);
            else if (!strcmp(line, "drm-memory-vram") || !strcmp(line, "drm-resident-vram") ||
                     !strcmp(line, "drm-resident-local0")) {
                uint64_t v = parse_size(c);
                if (v > cmem)
                    cmem = v;
                cmem_have = 1;
            }
        }
        fclose(f);
        if (!driver_matches(vendor, drv) || (pdev[0] && dpdev[0] && strcmp(pdev, dpdev)))
            continue;
        int dup = 0;
        for (int i = 0; i < nseen && have_client; i++)
            dup |= seen[i] == client;
        if (dup)
            continue;
        if (have_client && nseen < MAX_CLIENTS)
            seen[nseen++] = client;
        found = 1;
        engine += ceng;
        if (cmem_have)
            mem += cmem, have_mem = 1;
    }
    closedir(d);
    if (found) {
        out->engine_present = 1;
        out->engine_busy_ns = engine;
        if (have_mem)
            out->client_mem_present = 1, out->client_mem_bytes = mem;
    }
    return found;
}

void loom_vendor_read_drm(const char *drm_dir, const char *fdinfo_dir, uint32_t vendor_id, loom_vendor_counters *out)
{
    char card[32] = "", pdev[64] = "";
    int best = -1;
    DIR *d = opendir(drm_dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            int num = card_number(e->d_name);
            if (num < 0 || (best >= 0 && num > best))
                continue;
            char path[PATH_MAX];
            uint64_t v;
            pathf(path, sizeof path, "%s/%s/device/vendor", drm_dir, e->d_name);
            if (read_u64(path, &v) && v == vendor_id) {
                best = num;
                pathf(card, sizeof card, "%s", e->d_name);
            }
        }
        closedir(d);
    }
    int any = 0;
    if (card[0]) {
        char dev[PATH_MAX], path[PATH_MAX], real[PATH_MAX];
        pathf(dev, sizeof dev, "%s/%s/device", drm_dir, card);
        /* "device" links to the PCI device: ../../../0000:03:00.0 */
        ssize_t k = readlink(dev, real, sizeof real - 1);
        if (k > 0) {
            real[k] = 0;
            const char *b = strrchr(real, '/');
            pathf(pdev, sizeof pdev, "%s", b ? b + 1 : real);
        }
        uint64_t v;
        if (vendor_id == 0x1002) {
            pathf(path, sizeof path, "%s/gpu_busy_percent", dev);
            if (read_u64(path, &v))
                out->util_present = 1, out->util_pct = (double)v;
            pathf(path, sizeof path, "%s/mem_info_vram_used", dev);
            if (read_u64(path, &v))
                out->mem_used_present = 1, out->mem_used_bytes = v;
            pathf(path, sizeof path, "%s/mem_info_vram_total", dev);
            if (read_u64(path, &v))
                out->mem_total_present = 1, out->mem_total_bytes = v;
            pathf(path, sizeof path, "%s/pp_dpm_sclk", dev);
            out->clock_present = read_dpm(path, &out->clock_mhz);
            pathf(path, sizeof path, "%s/pp_dpm_mclk", dev);
            out->mem_clock_present = read_dpm(path, &out->mem_clock_mhz);
        } else if (vendor_id == 0x8086) {
            pathf(path, sizeof path, "%s/%s/gt_act_freq_mhz", drm_dir, card);
            if (read_u64(path, &v))
                out->clock_present = 1, out->clock_mhz = (double)v;
        }
        read_hwmon(dev, out);
        any = out->util_present || out->mem_used_present || out->clock_present || out->temp_present ||
              out->power_present;
        if (any)
            snprintf(out->source, sizeof out->source, "%s sysfs %s",
                     vendor_id == 0x1002 ? "amdgpu" : "i915", card);
    }
    if (read_fdinfo(fdinfo_dir, vendor_id, pdev, out)) {
        size_t k = strlen(out->source);
        snprintf(out->source + k, sizeof out->source - k, "%sfdinfo", k ? " + " : "");
    }
}

loom_status loom_vendor_counters_read(loom_device *dev, loom_vendor_counters *out)
{
    if (!out)
        return LOOM_E_INVALID;
    memset(out, 0, sizeof *out);
    out->sample_ns = loom_now_ns();
    if (!loom_device_valid(dev))
        return LOOM_E_INVALID;
    const loom_device_info *info = &dev->info;
    /* A CPU device (ours, lavapipe, PoCL) may carry a GPU vendor's id; no
     * GPU counter describes it. */
    if (info->type == LOOM_DEVICE_CPU)
        return LOOM_OK;
    if (info->vendor_id == 0x10de)
        loom_vendor_read_nvml(info->uuid, out);
    else if (info->vendor_id == 0x1002 || info->vendor_id == 0x8086)
        loom_vendor_read_drm("/sys/class/drm", "/proc/self/fdinfo", info->vendor_id, out);
    return LOOM_OK;
}

double loom_vendor_engine_pct(const loom_vendor_counters *prev, const loom_vendor_counters *cur)
{
    if (!prev || !cur || !prev->engine_present || !cur->engine_present)
        return -1;
    double dt = cur->sample_ns - prev->sample_ns;
    if (!(dt > 0))
        return -1;
    double pct = 100.0 * (cur->engine_busy_ns - prev->engine_busy_ns) / dt;
    return pct < 0 ? 0 : pct > 100 ? 100 : pct;
}
