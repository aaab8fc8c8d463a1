/* fork_stdio.c: fork() racing stdio streams that allocate (the idea of glibc's
 * tst-malloc-fork-deadlock).
 *
 * fork() takes the C library's stdio list lock and runs the allocator's
 * pthread_atfork handlers; stdio calls in other threads take stream locks
 * and then allocate. If the allocator's fork handlers and stdio take their
 * locks in opposite orders, a fork deadlocks against a getline or fflush in
 * another thread (the whole process hangs), or the child inherits a lock
 * held by a thread that no longer exists in it.
 *
 * FORKERS threads fork in a loop (the child leaves at once with
 * CHILD_STATUS, the parent checks that status); READERS threads each read a
 * file holding one LINE_LENGTH-character line with rewind + getline, freeing
 * the line each time so getline allocates again, and copy it into a block of
 * their own (so the linked form, whose getline uses the C library's malloc,
 * still allocates from buddymalloc there); one thread calls fflush(NULL) in
 * a loop. After RUN_MS everything stops and is joined.
 */
#include <sys/wait.h>

#include "hang_common.h"

#define FORKERS 4
#define READERS 8
#define LINE_LENGTH 50000
#define CHILD_STATUS 17
#define RUN_MS 300
#define TEMPLATE_NAME "hang_fork_stdio.XXXXXX"
#define PATH_MAX_LEN 512

static char file_path[PATH_MAX_LEN];
static atomic_bool stop;
/* The readers and main meet here once every reader has the file open: main
 * then unlinks it, so a run killed by the driver leaves no file behind. */
static pthread_barrier_t opened;

static void *forker(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    pid_t pid = fork();
    if (pid < 0) hang_fail("fork: %s", strerror(errno));
    if (pid == 0) _exit(CHILD_STATUS);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) hang_fail("waitpid: %s", strerror(errno));
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != CHILD_STATUS)
      hang_fail("forked child ended with status 0x%x, expected exit(%d)", (unsigned)status, CHILD_STATUS);
  }
  return NULL;
}

static void *reader(void *arg) {
  (void)arg;
  FILE *f = fopen(file_path, "r");
  if (f == NULL) hang_fail("fopen %s: %s", file_path, strerror(errno));
  hang_barrier_wait(&opened);
  while (!atomic_load(&stop)) {
    char *line = NULL;
    size_t cap = 0;
    rewind(f);
    ssize_t n = getline(&line, &cap, f);
    if (n != LINE_LENGTH + 1) hang_fail("getline returned %zd, expected %d", n, LINE_LENGTH + 1);
    char *copy = malloc((size_t)n);
    if (copy == NULL) hang_fail("malloc(%zd) returned NULL", n);
    memcpy(copy, line, (size_t)n);
    if (copy[0] != 'x' || copy[n - 2] != 'x') hang_fail("line copy corrupted");
    free(copy);
    libc_free(line); /* getline's buffer is the C library's */
  }
  fclose(f);
  return NULL;
}

static void *flusher(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) fflush(NULL);
  return NULL;
}

/* Writes the one-line file the readers read; its path goes to file_path. */
static void make_file(void) {
  const char *dir = getenv("TMPDIR");
  if (dir == NULL || dir[0] == '\0') dir = "/tmp";
  snprintf(file_path, sizeof file_path, "%s/%s", dir, TEMPLATE_NAME);
  int fd = mkstemp(file_path);
  if (fd < 0) hang_fail("mkstemp %s: %s", file_path, strerror(errno));
  static char text[LINE_LENGTH + 1];
  memset(text, 'x', LINE_LENGTH);
  text[LINE_LENGTH] = '\n';
  if (write(fd, text, sizeof text) != (ssize_t)sizeof text) hang_fail("write %s: %s", file_path, strerror(errno));
  close(fd);
}

int main(void) {
  pthread_t forkers[FORKERS], readers[READERS], flush_thread;
  make_file();
  hang_check_rc(pthread_barrier_init(&opened, NULL, READERS + 1), "pthread_barrier_init");
  for (unsigned i = 0; i < READERS; i++) readers[i] = hang_spawn(reader, NULL);
  hang_barrier_wait(&opened);
  unlink(file_path);
  flush_thread = hang_spawn(flusher, NULL);
  for (unsigned i = 0; i < FORKERS; i++) forkers[i] = hang_spawn(forker, NULL);

  test_sleep_ms(RUN_MS);
  atomic_store(&stop, true);

  for (unsigned i = 0; i < FORKERS; i++) hang_join(forkers[i]);
  hang_join(flush_thread);
  for (unsigned i = 0; i < READERS; i++) hang_join(readers[i]);
  pthread_barrier_destroy(&opened);
  return 0;
}
