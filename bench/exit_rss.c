/* exit_rss.c: a process's resident set at its exit (scripts/bench --exit-rss).
 *
 * Runs PROG ARGS... as a traced child and stops it at PTRACE_EVENT_EXIT, the
 * last moment its memory is still mapped, then reads /proc/PID/status and
 * nothing of the child's memory: a debugger that reads the child's pages
 * (gdb's `catch syscall exit_group`) faults them in and counts them. Peak
 * RSS (`/usr/bin/time -f %M`, VmHWM) counts pages a process touched at any
 * time, where the resident set at exit says which stayed: the footprint a
 * preloaded allocator adds to every short process (#20).
 * Prints one line on stderr, "exit_rss: vm_rss_kb=N rss_anon_kb=N
 * rss_file_kb=N vm_hwm_kb=N", and exits with the child's status (128 + its
 * signal if one ended it). The child inherits the environment (LD_PRELOAD)
 * and the standard streams.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#define STATUS_TEXT_MAX 8192

/* The kB figure after `key` in the status text; -1 if absent. */
static long status_kb(const char *text, const char *key) {
  const char *at = strstr(text, key);
  return at != NULL ? strtol(at + strlen(key), NULL, 10) : -1;
}

static void report(pid_t pid) {
  char path[64], text[STATUS_TEXT_MAX];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    perror("exit_rss: /proc/PID/status");
    return;
  }
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  fprintf(stderr, "exit_rss: vm_rss_kb=%ld rss_anon_kb=%ld rss_file_kb=%ld vm_hwm_kb=%ld\n", status_kb(text, "VmRSS:"),
          status_kb(text, "RssAnon:"), status_kb(text, "RssFile:"), status_kb(text, "VmHWM:"));
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PROG [ARGS...]\n", argv[0]);
    return 2;
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("exit_rss: fork");
    return 2;
  }
  if (pid == 0) {
    /* Stopped before the exec, so that the tracer sets its options first. */
    if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0) _exit(126);
    raise(SIGSTOP);
    execvp(argv[1], argv + 1);
    perror("exit_rss: exec");
    _exit(127);
  }
  int status;
  if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status)) return 2;
  ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)(long)(PTRACE_O_TRACEEXIT | PTRACE_O_EXITKILL));
  ptrace(PTRACE_CONT, pid, NULL, NULL);
  for (;;) {
    if (waitpid(pid, &status, 0) != pid) return 2;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    int sig = WSTOPSIG(status);
    if (sig == SIGTRAP && (status >> 16) == PTRACE_EVENT_EXIT) {
      report(pid);
      sig = 0;
    } else if (sig == SIGTRAP) {
      sig = 0; /* the stop after a traced exec */
    }
    ptrace(PTRACE_CONT, pid, NULL, (void *)(long)sig);
  }
}
