/* stress_snapshot.c: statistics snapshots on a signal (stats_signal=) while
 * threads allocate and free.
 *
 * The signal goes to the allocating threads themselves (pthread_kill), so
 * that the handler often interrupts one inside malloc or free, maybe holding
 * a zone lock or the caches' registry lock: small bins (tcache_max=4) send
 * the threads to the zones all the time, and blocks they swap through a
 * shared table are freed by threads of other zones. A handler that took an
 * allocator lock could wait there for its own thread (the test's timeout
 * would end it); buddymalloc's only wakes its snapshot thread, which takes
 * the locks as any thread does. Some signals go to the process instead, for
 * the kernel to pick a thread.
 * Checks: every block keeps its contents, the snapshots are written (one at
 * least for the burst, and one for a last signal after the threads are done)
 * and each is whole: its first line names this process and the signal.
 * The options are read at start-up, so the program runs itself again with
 * BUDDY_OPTIONS set and the snapshots going to a fresh directory.
 */
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "stress_common.h"

#define SN_THREADS 4
#define SN_SLOTS 64
#define SN_SHARED 64
#define SN_MAX_SIZE (96 * KIB) /* small blocks and page runs */
#define SN_OPS 400000          /* per thread, nominal */
#define SN_WAIT_MS 30000       /* for the last snapshot (a deadlock guard) */
/* Between two signals: a snapshot walks every region, far slower under a
 * sanitizer, and back-to-back snapshots would starve the threads. */
#define SN_INTERVAL_MS (STRESS_SANITIZED ? 10 : 1)

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static stress_block shared_table[SN_SHARED];
static atomic_uint running;

static void *worker(void *argp) {
  unsigned tid = (unsigned)(uintptr_t)argp;
  stress_block slots[SN_SLOTS] = {0};
  test_rng rng;
  test_rng_seed(&rng, 7000 + tid);
  unsigned long ops = stress_work(SN_OPS);
  for (unsigned long i = 0; i < ops; i++) {
    stress_block *b = &slots[test_rng_below(&rng, SN_SLOTS)];
    if (b->p != NULL) {
      if (test_rng_below(&rng, 8) == 0) { /* hand it to another thread to free */
        stress_swap_shared(&shared_lock, &shared_table[test_rng_below(&rng, SN_SHARED)], b);
        if (b->p != NULL) stress_release(b, "a block another thread made");
      } else {
        stress_release(b, "own block");
      }
    } else {
      stress_alloc(b, &rng, stress_pick_small(&rng, SN_MAX_SIZE), tid, i);
    }
  }
  for (unsigned i = 0; i < SN_SLOTS; i++)
    if (slots[i].p != NULL) stress_release(&slots[i], "own block at the end");
  atomic_fetch_sub(&running, 1);
  return NULL;
}

static char *file_text(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return NULL;
  size_t cap = 1 << 16, len = 0;
  char *text = malloc(cap);
  for (size_t n; text != NULL && (n = fread(text + len, 1, cap - 1 - len, f)) > 0;) {
    len += n;
    if (len == cap - 1) {
      char *bigger = realloc(text, cap *= 2);
      if (bigger == NULL) free(text);
      text = bigger;
    }
  }
  fclose(f);
  if (text != NULL) text[len] = '\0';
  return text;
}

static size_t count_of(const char *text, const char *what) {
  size_t n = 0;
  for (const char *at = text; at != NULL && (at = strstr(at, what)) != NULL; at += strlen(what)) n++;
  return n;
}

/* Whole reports in the file: those whose class table's heading is there. */
static size_t reports_in(const char *path) {
  char *text = file_text(path);
  size_t n = count_of(text, "(in caches)\n");
  free(text);
  return n;
}

static void sleep_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

static int run(const char *dir) {
  char path[256], header[128];
  snprintf(path, sizeof path, "%s/snapshot.%d", dir, (int)getpid());
  snprintf(header, sizeof header, "buddymalloc statistics: pid %d (%s), on signal %d\n", (int)getpid(),
           program_invocation_short_name, SIGUSR2);

  pthread_t th[SN_THREADS];
  atomic_store(&running, SN_THREADS);
  for (unsigned t = 0; t < SN_THREADS; t++)
    if (pthread_create(&th[t], NULL, worker, (void *)(uintptr_t)t) != 0) stress_die("pthread_create", errno);
  unsigned long sent = 0;
  for (unsigned i = 0; atomic_load(&running) > 0; i++) {
    if (i % 16 == 15) kill(getpid(), SIGUSR2);
    else pthread_kill(th[i % SN_THREADS], SIGUSR2); /* may find it gone: ESRCH is fine */
    sent++;
    sleep_ms(SN_INTERVAL_MS);
  }
  for (unsigned t = 0; t < SN_THREADS; t++) pthread_join(th[t], NULL);
  printf("%lu signals sent while %u threads allocated\n", sent, SN_THREADS);

  /* The burst's last snapshot may still be being written: wait until the
   * count stays put, then one more signal must make one more. */
  size_t before = reports_in(path), now;
  for (int waited = 0; waited < SN_WAIT_MS; waited += 200) {
    sleep_ms(200);
    if ((now = reports_in(path)) == before) break;
    before = now;
  }
  stress_check(before >= 1, "the burst of signals wrote snapshots");
  kill(getpid(), SIGUSR2);
  for (int waited = 0; waited < SN_WAIT_MS && reports_in(path) <= before; waited += 10) sleep_ms(10);
  size_t after = reports_in(path);
  stress_check(after == before + 1, "a last signal wrote one more snapshot");

  char *text = file_text(path);
  size_t headers = count_of(text, header);
  stress_check(headers == after && count_of(text, "buddymalloc statistics:") == after,
               "every snapshot is whole and names this process and the signal");
  stress_check(after <= sent + 1, "no more snapshots than signals");
  if (headers != after && text != NULL) fprintf(stderr, "%s\n", text);
  printf("%zu snapshots\n", after);
  free(text);
  unlink(path);
  return stress_finish("stress_snapshot");
}

int main(int argc, char **argv) {
  (void)argc;
  const char *dir = getenv("STRESS_SNAPSHOT_DIR");
  if (dir == NULL) {
    static char made[] = "/tmp/buddy-snapshot-XXXXXX";
    static char value[512];
    if (mkdtemp(made) == NULL) stress_die("mkdtemp", errno);
    snprintf(value, sizeof value, "stats_signal=USR2,tcache_max=4,stats_file=%s/snapshot.%%p", made);
    setenv("BUDDY_OPTIONS", value, 1);
    setenv("STRESS_SNAPSHOT_DIR", made, 1);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) stress_die("fork", errno);
    if (pid == 0) {
      execv("/proc/self/exe", argv);
      stress_die("execv", errno);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    rmdir(made);
    return WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_FAILURE;
  }
  return run(dir);
}
