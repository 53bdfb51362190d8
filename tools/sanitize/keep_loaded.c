/* LD_PRELOADed by tools/test.sh --sanitize (built without sanitizers):
 * dlclose does nothing, so the Vulkan loader, ocl-icd and the drivers they
 * open (lavapipe, LLVM, PoCL, the validation layer) stay mapped until the
 * process exits. LeakSanitizer checks for leaks at exit; a leak allocated in
 * a library that is already unmapped has a stack of "<unknown module>"
 * frames that no suppression can name, so without this every driver's own
 * leak would fail the run. With it, tools/sanitize/lsan.supp suppresses
 * those by library name, and a leak in loom still fails. */
int dlclose(void *handle);

int dlclose(void *handle)
{
    (void)handle;
    return 0;
}
