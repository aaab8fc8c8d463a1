/* purge.c: giving free pages back to the OS after a delay.
 *
 * A zone counts the pages it freed to its buddy heap since its last purge
 * ("dirty" pages: free, but still resident) and the time by which they must be
 * gone: purge_delay_ms after the first of them was freed. Every zone slow path
 * that finds that time passed purges all the zone's free blocks not yet known
 * to be zero (madvise), which also marks them zeroed, so calloc skips them,
 * and unmaps wholly free regions beyond REGION_RESERVE. With
 * purge_delay_ms=0 that happens as the free's zone lock is released.
 *
 * A program that goes idle calls no slow path, so background_purge=1 starts a
 * thread that wakes every half delay and purges what is due. It takes each
 * zone lock in turn, briefly; after fork() the child starts its own on the
 * next thread-cache slow path.
 */
#include "zone.h"


static bool purge_thread_running;

/* Releases the zone's empty-slab reserve (it saves a slab's set-up when a class
 * empties and refills in quick succession, and a whole purge delay has passed
 * since the zone last freed pages), unmaps wholly free regions beyond the
 * reserve, then purges every free block not known to be zero; returns pages
 * given back. */
size_t purge_zone_locked(zone_t *z) {
  zone_release_empty_slabs_locked(z);
  size_t purged = zone_release_free_regions_locked(z, REGION_RESERVE) * BUDDY_REGION_PAGES;
  for (unsigned k = 0; k < BUDDY_ORDERS; k++) {
    page_desc_t *sentinel = &z->heap.free_list[k];
    for (page_desc_t *d = sentinel->next; d != sentinel; d = d->next) {
      if (d->flags & PAGE_ZEROED) continue;
      /* Only a purge that surely zeroed the pages lets calloc skip them. */
      if (os_purge(page_address_of(d), PAGE_SIZE << k, options.purge_madv_free)) d->flags |= PAGE_ZEROED;
      purged += (size_t)1 << k;
    }
  }
  z->dirty_pages = 0;
  z->purged_pages += purged;
  return purged;
}

/* Called as pages go back to the heap: the purge happens on unlock. */
void purge_note_freed_locked(zone_t *z, size_t pages) {
  if (z->dirty_pages == 0) z->purge_deadline_ns = os_now_ns() + (uint64_t)options.purge_delay_ms * 1000000u;
  z->dirty_pages += pages;
}

void purge_if_due_locked(zone_t *z) {
  if (z->dirty_pages != 0 && os_now_ns() >= z->purge_deadline_ns) purge_zone_locked(z);
}

/* ---- The background thread ----------------------------------------------- */

static void *purge_thread_main(void *arg) {
  (void)arg;
  long half = options.purge_delay_ms / 2 > 0 ? options.purge_delay_ms / 2 : 1;
  for (;;) {
    os_sleep_ms(half);
    for (unsigned i = 0; i < ZONES_MAX; i++) {
      zone_lock(&zones[i]);
      purge_if_due_locked(&zones[i]);
      zone_unlock(&zones[i]);
    }
    huge_expire();       /* cached huge blocks past the delay, too */
    tcache_sweep_idle(); /* and idle threads' caches */
  }
  return NULL;
}

/* Called with no lock held (pthread_create allocates). */
void purge_start_thread(void) {
  if (!options.background_purge || __atomic_exchange_n(&purge_thread_running, true, __ATOMIC_ACQ_REL)) return;
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&thread, &attr, purge_thread_main, NULL) != 0)
    __atomic_store_n(&purge_thread_running, false, __ATOMIC_RELEASE);
  pthread_attr_destroy(&attr);
}

bool purge_thread_wanted(void) {
  return options.background_purge && !__atomic_load_n(&purge_thread_running, __ATOMIC_ACQUIRE);
}

/* In the child of fork() the thread does not exist. */
void purge_fork_child(void) {
  purge_thread_running = false;
}
