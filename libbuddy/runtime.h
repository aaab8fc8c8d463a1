/* runtime.h: the only code that calls every layer: global start-up
 * (init.c), fork handlers (fork.c) and the periodic maintenance that purges,
 * expires and reclaims (maintain.c).
 */
#ifndef BUDDY_RUNTIME_H
#define BUDDY_RUNTIME_H

#include "report.h"

#pragma GCC visibility push(hidden)

/* ---- init.c: global start-up ------------------------------------------- */

extern bool runtime_ready;
void runtime_init(void); /* idempotent; cheap once done */
/* The preload library's DT_FINI: nothing to do (init.c says why). */
void runtime_at_unload(void);

/* ---- maintain.c: periodic maintenance ------------------------------------ */

/* Every MAINTAIN_CHECK_SLOW_PATHS-th small allocation slow path of a thread
 * looks at the clock for the periodic work. */
#define MAINTAIN_CHECK_SLOW_PATHS 64
extern __thread unsigned maintain_slow_paths __attribute__((tls_model("initial-exec")));
extern bool maintain_thread_running;
extern uint64_t maintain_thread_failures; /* starts of the background thread that failed */
/* When the next period is due (os_now_ns), or MAINTAIN_CLOCK_UNSTARTED
 * (maintain.c). */
extern uint64_t maintain_next_ns;
#define MAINTAIN_CLOCK_UNSTARTED UINT64_MAX
/* The periodic work, if a period has passed since the last (any thread);
 * the first call starts the clock. */
void maintain_tick(void);
void maintain_start_thread(void); /* the background thread, if asked for */
void maintain_fork_child(void);

/* ---- fork.c: fork handlers over every layer ----------------------------- */

void fork_install_handlers(void); /* once, at global start-up */

/* ---- The API's way in ---------------------------------------------------- */

/* Every slow path of the API that may be the process's first allocation:
 * start-up, and the background threads (purge, snapshots) if they are wanted
 * and not running. */
static inline void runtime_enter(void) {
  if (unlikely(!__atomic_load_n(&runtime_ready, __ATOMIC_ACQUIRE))) runtime_init();
  if (unlikely(options.background_purge && !__atomic_load_n(&maintain_thread_running, __ATOMIC_ACQUIRE)))
    maintain_start_thread();
  if (unlikely((options.stats_signal | options.prof_signal) != 0 &&
               !__atomic_load_n(&snapshot_thread_running, __ATOMIC_ACQUIRE)))
    snapshot_start_thread();
}
/* The same, for a small allocation's slow path, which also counts towards
 * the periodic work. */
static inline void runtime_enter_counted(void) {
  runtime_enter();
  if (unlikely(++maintain_slow_paths % MAINTAIN_CHECK_SLOW_PATHS == 0)) maintain_tick();
}

#pragma GCC visibility pop

#endif /* BUDDY_RUNTIME_H */
