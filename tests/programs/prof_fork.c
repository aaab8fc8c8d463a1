/* prof_fork.c: heap profiling under fork and many threads. Keeps blocks
 * from kept_before_fork, dumps a profile (buddy_prof_dump, found with
 * dlsym: the program runs with the library preloaded), then forks again
 * and again while PROF_THREADS threads allocate and free; each child keeps
 * blocks from kept_in_child and dumps its own profile, which must hold
 * every sample of kept_before_fork (prof.sh compares them) and those of
 * kept_in_child. A thread dumps profiles all along (dumper), so that some
 * forks find a profile being written: the child's own dump (and its exit)
 * must not wait for that thread's writer lock. Then, if asked, the profile
 * on a signal (prof_signal=USR2).
 * An alarm ends a deadlocked run. Usage: prof_fork DIR [signal] */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROF_THREADS 8
#define FORKS 12
#define KEPT 4096

typedef int (*dump_fn)(const char *);
static volatile int stop;
static void *before[KEPT], *in_child[KEPT];

/* Not tail calls: the functions must be frames of the stacks. */
__attribute__((noinline)) void *kept_before_fork(size_t n) {
  void *p = malloc(n);
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}

__attribute__((noinline)) void *kept_in_child(size_t n) {
  void *p = malloc(n);
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}

static void *worker(void *arg) {
  uint64_t s = (uintptr_t)arg * 2654435761u + 1;
  void *ring[64] = {0};
  for (unsigned i = 0; !stop; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    unsigned k = i % 64;
    free(ring[k]);
    size_t n = s % 50 == 0 ? 100000 + s % 200000 : 16 + s % 4000;
    ring[k] = malloc(n);
    if (ring[k] == NULL) abort();
    ((char *)ring[k])[0] = 1;
  }
  for (unsigned k = 0; k < 64; k++) free(ring[k]);
  return NULL;
}

static dump_fn dump;
static const char *dump_dir;

static int dump_to(dump_fn fn, const char *dir, const char *name);

static void *dumper(void *arg) {
  (void)arg;
  while (!stop) dump_to(dump, dump_dir, "dumper.heap");
  return NULL;
}

static int has_maps(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  char line[512];
  int found = 0;
  while (!found && fgets(line, sizeof line, f) != NULL) found = strncmp(line, "MAPPED_LIBRARIES:", 17) == 0;
  fclose(f);
  return found;
}

static int dump_to(dump_fn dump, const char *dir, const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return dump(path);
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *dir = argv[1];
  dump = (dump_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "buddy_prof_dump");
  dump_dir = dir;
  if (dump == NULL) {
    fprintf(stderr, "prof_fork: buddy_prof_dump not found (not preloaded?)\n");
    return 2;
  }
  alarm(120);
  for (int i = 0; i < KEPT; i++) before[i] = kept_before_fork(4096);
  if (dump_to(dump, dir, "before.heap") != 0) return 3;
  pthread_t t[PROF_THREADS];
  for (uintptr_t i = 0; i < PROF_THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)(i + 1));
  pthread_t dumping;
  pthread_create(&dumping, NULL, dumper, NULL);
  for (int f = 0; f < FORKS; f++) {
    usleep(3000);
    pid_t pid = fork();
    if (pid < 0) return 4;
    if (pid == 0) {
      alarm(30);
      for (int i = 0; i < KEPT; i++) in_child[i] = kept_in_child(4096);
      char name[64];
      snprintf(name, sizeof name, "child.%d.heap", f);
      _exit(dump_to(dump, dir, name) == 0 ? 0 : 5);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "prof_fork: child %d failed (status %#x)\n", f, status);
      return 6;
    }
  }
  stop = 1;
  for (int i = 0; i < PROF_THREADS; i++) pthread_join(t[i], NULL);
  pthread_join(dumping, NULL);
  if (argc > 2) { /* the profile on prof_signal=USR2, written by the allocator's thread */
    raise(SIGUSR2);
    char path[4096];
    snprintf(path, sizeof path, "%s/signal.%d.1.heap", dir, (int)getpid());
    /* Written once its maps are there (the last part): then wait a little. */
    for (int i = 0; i < 1000 && !has_maps(path); i++) usleep(10000);
    usleep(200000);
  }
  for (int i = 0; i < KEPT; i++) free(before[i]);
  printf("forked %d children under %d threads\n", FORKS, PROF_THREADS);
  return 0;
}
