/* The profiler's internals: the hook loom_program_run calls, and the vendor
 * counter readers that tests point at fixture trees. */
#ifndef LOOM_PROFILE_H
#define LOOM_PROFILE_H

#include "internal.h"

struct loom_program;

/* Folds the run that started at t0_ns (CLOCK_MONOTONIC) and took
 * p->last_run_ns into p's profile. Never fails the run: a failure to fetch
 * timestamps is logged and the run counted untimed. */
void loom_profile_record(struct loom_program *p, double t0_ns);
void loom_profile_free(struct loom_program *p);

/* FLOPs and bytes of one executed node, from its shapes. */
struct loom_exec_node;
void loom_profile_cost(const struct loom_exec_node *x, double *flops, double *bytes);

/* The DRM part of loom_vendor_counters_read with its roots given:
 * drm_dir is normally "/sys/class/drm", fdinfo_dir "/proc/self/fdinfo".
 * Reads the first card whose PCI vendor is vendor_id (amdgpu sysfs
 * counters), and the fdinfo DRM clients of that card's PCI device. */
void loom_vendor_read_drm(const char *drm_dir, const char *fdinfo_dir, uint32_t vendor_id,
                          loom_vendor_counters *out);

/* NVML through dlopen; 0 if the library or the device is not there. uuid is
 * the device's hex UUID ("" if unknown). */
int loom_vendor_read_nvml(const char *uuid, loom_vendor_counters *out);

#endif
