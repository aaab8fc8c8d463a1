/* vsz.c: prints this process's virtual size (VmSize, in KiB) right after the
 * allocator's first malloc and free.
 *
 * Address space is a resource too: under `ulimit -v`, or an RLIMIT_AS a
 * program sets itself, every byte an allocator reserves up front is a byte
 * the program cannot map. run_scenario.sh (scenario "vsz") runs this once
 * without LD_PRELOAD (glibc's malloc) and once with libbuddymalloc.so
 * preloaded, and fails if the preloaded VmSize exceeds the plain one by more
 * than its threshold. There is no linked form: a linked binary has no plain
 * twin to compare with.
 */
#include "hang_common.h"

#define FIRST_SIZE 16
#define STATUS_PATH "/proc/self/status"
#define VMSIZE_KEY "VmSize:"
#define LINE_MAX_LEN 256

int main(void)
{
    void *p = malloc(FIRST_SIZE);
    if (p == NULL)
        hang_fail("malloc(%d) returned NULL", FIRST_SIZE);
    free(p);

    FILE *f = fopen(STATUS_PATH, "r");
    if (f == NULL)
        hang_fail("fopen %s: %s", STATUS_PATH, strerror(errno));
    char line[LINE_MAX_LEN];
    unsigned long kib = 0;
    bool found = false;
    while (!found && fgets(line, sizeof line, f) != NULL)
        found = strncmp(line, VMSIZE_KEY, strlen(VMSIZE_KEY)) == 0 &&
                sscanf(line + strlen(VMSIZE_KEY), "%lu", &kib) == 1;
    fclose(f);
    if (!found)
        hang_fail("no %s line in %s", VMSIZE_KEY, STATUS_PATH);
    printf("%lu\n", kib);
    return 0;
}
