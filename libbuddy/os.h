/* os.h: the whole contract between buddymalloc and the operating system.
 *
 * Nothing else in libbuddy includes <sys/mman.h> or makes a system call.
 * No function here allocates (but os_start_thread, which says so), takes a
 * lock (but stdio's, for fork), or touches errno visibly: each saves and
 * restores errno, so that free() preserves it as glibc requires.
 */
#ifndef BUDDY_OS_H
#define BUDDY_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Code that every process runs once, at start-up or at exit, whether it
 * allocates or not: all of it in one section, which the linker puts first
 * in the library's code (.text.startup), so that a process that never
 * allocates has the kernel map one or two 64 KiB windows of the code
 * (fault-around) rather than all of them. Functions of every layer wear it;
 * so do the fork handlers that every child runs, which a file of cold code
 * holds (a child maps the code it runs anew: fork copies no page table of a
 * file's mapping). */
#define startup_code __attribute__((section(".text.startup")))
/* And the constants that code reads (the variables' names): among the data
 * made read-only after relocation, whose page the dynamic linker has
 * written anyway, so that a process that never allocates reads nothing of
 * the library's other read-only data (.rodata). */
#define startup_data __attribute__((section(".data.rel.ro.startup")))
/* And the small variables that a process writes at start-up or at its first
 * allocation (locks, flags, clocks, counters): in .data, whose page the
 * dynamic linker has written anyway, rather than each on a page of .bss
 * of its own between large arrays (the program-footprint test counts the
 * pages). Zero-initialised like .bss; they cost the file a few hundred
 * bytes. */
#define startup_state __attribute__((section(".data.startup")))

/* Maps `size` bytes (a page multiple) of zeroed, read-write memory aligned to
 * `align` (a power of two >= the page size). Returns NULL when the address
 * space is exhausted (ENOMEM, RLIMIT_AS). */
void *os_map_aligned(size_t size, size_t align);

/* Maps `prefix + size` bytes (page multiples) of zeroed, read-write memory so
 * that the returned address, `prefix` bytes into the mapping, is aligned to
 * `align`: [result - prefix, result + size) is mapped. NULL as above. */
void *os_map_aligned_with_prefix(size_t prefix, size_t size, size_t align);

/* Reserves `size` bytes (a page multiple) that read as zero and cannot be
 * written until os_make_writable: untouched, they cost no memory and no
 * commit charge. NULL if the address space is exhausted. */
void *os_map_readonly(size_t size);

/* Makes a page-aligned part of an os_map_readonly range writable; false if
 * the system refuses (out of memory or mappings). */
bool os_make_writable(void *addr, size_t size);
bool os_make_readonly(void *addr, size_t size);
/* Leaves a large reservation out of core dumps (best effort). */
void os_exclude_from_core_dumps(void *addr, size_t size);

/* Unmaps what an os_map_* function returned (or a page-aligned part of it). */
void os_unmap(void *addr, size_t size);

/* Gives the pages back, the address range staying mapped: with
 * lazy == false (MADV_DONTNEED) contents become zero at once; with lazy
 * (MADV_FREE) the kernel takes them when it needs memory, contents undefined.
 * Returns true only when the pages now certainly read as zero (MADV_DONTNEED
 * succeeded: it fails on locked pages, which keep their data). */
bool os_purge(void *addr, size_t size, bool lazy);

/* Asks for, or forbids, transparent huge pages on a range. */
void os_huge_pages(void *addr, size_t size, bool wanted);

/* Moves or grows a mapping of old_size to new_size keeping it `align`-aligned
 * and its contents; returns NULL (old mapping intact) on failure. */
void *os_remap_aligned(void *addr, size_t old_size, size_t new_size, size_t align);

/* The system page size (4096 on every supported target; checked at start-up). */
size_t os_page_size(void);

/* Value of environment variable `name` read straight from environ (no getenv,
 * no allocation); NULL if absent or if the process is setuid/setgid. */
const char *os_getenv(const char *name);

/* Writes all of buf to stderr with write(2), retrying on EINTR. */
void os_write_stderr(const char *buf, size_t len);
/* The same to file descriptor fd. */
void os_write_fd(int fd, const char *buf, size_t len);
/* A private duplicate of stderr (close-on-exec), for a report at exit that
 * must survive programs closing fd 2 first (coreutils do); -1 on failure. */
int os_dup_stderr(void);
/* Creates (truncates) a file for writing, 0644; -1 on failure. */
int os_create_file(const char *path);
/* Opens a file for appending (created 0644 if missing); -1 on failure. */
int os_append_file(const char *path);
void os_close(int fd);
/* Appends the whole of the file at path (e.g. /proc/self/maps) to fd;
 * false if it cannot be read. */
bool os_copy_file(int fd, const char *path);

/* Ends the process with SIGABRT, never returning, without allocating. */
_Noreturn void os_abort(void);

/* Monotonic time in nanoseconds, to a clock tick (1-10 ms, by the kernel's
 * HZ): what it times is the purge delay (1 s unless set) and the idle sweep's
 * period (100 ms or more), to which a tick does not matter. Coarse time is a
 * vDSO read of the kernel's last tick, no system call and no TSC read (which
 * a VM may trap): a zone unlock reads it whenever pages wait for a purge.
 * And a sleep. */
uint64_t os_now_ns(void);
void os_sleep_ms(long ms);

/* Sleeps while *word == expected, a word its process's threads share (the
 * zone locks': lock.h); returns at once if it differs, and also on a signal
 * or a spurious wake-up: the caller looks again. Wakes one thread asleep on
 * word. Raw system calls: not cancellation points. */
void os_futex_wait(uint32_t *word, uint32_t expected);
void os_futex_wake(uint32_t *word);

/* The calling thread's kernel id (gettid). */
int os_thread_id(void);

/* Whether thread `tid` of this process is blocked inside a system call (read
 * from /proc/self/task/TID/syscall), and its CPU time so far in nanoseconds
 * (/proc/self/task/TID/schedstat) in *run_ns. A thread blocked in a system
 * call is not executing any user code; an unchanged CPU time between two
 * readings means it did not run in between. False when either file cannot be
 * read (the thread is gone, or /proc is missing). */
bool os_thread_blocked(int tid, uint64_t *run_ns);

/* The process's peak resident set in bytes (VmHWM of /proc/self/status:
 * the whole process, its heap or not), 0 if it cannot be read. */
size_t os_peak_resident(void);

/* The process id (getpid), and the program's name (argv[0] without its
 * directory, as glibc keeps it for error messages; "" if unknown). */
int os_process_id(void);
const char *os_program_name(void);

/* The working directory's absolute path into buf, NUL-terminated; returns
 * its length, 0 if it does not fit or is not reachable from the root. */
size_t os_current_directory(char *buf, size_t size);

/* Runs handler(sig) on signal sig (in whichever thread the kernel delivers it
 * to; with SA_RESTART, every other signal blocked while it runs); false if
 * the signal cannot be caught (SIGKILL, SIGSTOP, those libc keeps). */
bool os_catch_signal(int sig, void (*handler)(int));

/* Makes a page-aligned range inaccessible (a guard: any access faults);
 * false if it could not be. */
bool os_make_guard(void *addr, size_t size);
/* The same for guards there may be many of at once (secure mode's guard
 * page after each slab, its sealed runs), each of which may split a
 * mapping in three: two more of the kernel's count of mappings per process
 * (vm.max_map_count, 65530 by default), past which mprotect and mmap fail,
 * the program's own too. Refused (false) while os_counted_guards_max of
 * them are live, so that they take at most half of the default count; the
 * callers go on without the guard. os_drop_counted_guard makes one
 * accessible again (false if the system refuses: it stays counted). */
#define OS_COUNTED_GUARDS_MAX 16384
extern size_t os_counted_guards_max; /* OS_COUNTED_GUARDS_MAX; tests lower it */
bool os_make_counted_guard(void *addr, size_t size);
bool os_drop_counted_guard(void *addr, size_t size);
size_t os_counted_guards(void);
/* Secure mode: on SIGSEGV and SIGBUS, calls handler(fault address) first;
 * when it returns, the signal gets the action it had before (which the
 * faulting access, repeated, then meets). False if it cannot be caught. */
bool os_catch_faults(void (*handler)(void *addr));

/* Starts a detached thread running main(NULL) with every signal blocked, so
 * that none meant for the program is delivered to it; false on failure.
 * pthread_create allocates: never call it with an allocator lock held. */
bool os_start_thread(void *(*main)(void *));

/* Whether the process has never had a second thread (glibc's
 * __libc_single_threaded): no other thread can hold a lock then. */
bool os_single_threaded(void);

/* Registers fork handlers, as pthread_atfork does (start-up code). */
void os_at_fork(void (*prepare)(void), void (*parent)(void), void (*child)(void));

/* stdio's list of open streams, locked around fork as glibc's own malloc
 * does: its lock comes before the allocator's (fflush(NULL) holds it while
 * it waits for a stream's lock, whose holder may be inside realloc). The
 * lock is recursive; glibc's fork takes it again after the prepare handlers
 * and resets it in the child. No-ops where libc does not export them. */
void os_stdio_lock(void);
void os_stdio_unlock(void);
void os_stdio_reset(void); /* in a fork child: unlocked, whoever held it */

/* 64 random bits from the kernel's AT_RANDOM bytes (no system call). */
unsigned long os_random_seed(void);

#endif /* BUDDY_OS_H */
