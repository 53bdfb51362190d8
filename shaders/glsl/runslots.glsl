// The per-run values (step, learning rate, ...) the host writes before each
// submit: the recording stays the same from run to run.
#ifndef LOOM_RUNSLOTS_GLSL
#define LOOM_RUNSLOTS_GLSL

layout(set = 0, binding = RUN_BINDING, std430) readonly buffer BufRun { loom_run_slot run[]; };

#endif
