/* report.h: statistics gathered by asking every layer (stats.c), and the
 * page-by-page dump of the regions (heapmap.c).
 */
#ifndef BUDDY_REPORT_H
#define BUDDY_REPORT_H

#include "prof.h"

#pragma GCC visibility push(hidden)

/* ---- stats.c ------------------------------------------------------------ */

/* What a report was made for; its first line says so, with the process. */
typedef enum stats_when { STATS_AT_EXIT, STATS_ON_SIGNAL, STATS_ON_CALL } stats_when_t;

void stats_collect(buddy_stats_t *s);
void stats_print(bool json); /* to stderr (malloc_stats) */
/* A report as stats= and stats_file= ask (text unless stats=json), to the
 * stats_file or else stderr. */
void stats_report(stats_when_t when);
void stats_init(void);       /* keeps a descriptor for the reports at exit and on a signal */
void stats_fork_child(void); /* re-makes the report locks */
/* The longest report stats_format_json and stats_print write. */
#define STATS_TEXT_MAX 8192
/* The statistics as JSON, into buf; returns the length (truncated to size). */
size_t stats_format_json(char *buf, size_t size);

/* ---- heapmap.c ----------------------------------------------------------- */

void heapmap_init(void);  /* reads BUDDY_HEAPMAP */
void heapmap_write(void); /* at exit: the region dump, if asked for */
void huge_write_map(int fd);

/* ---- snapshot.c: the statistics (stats_signal=) and heap profiles
 * (prof_signal=) on a signal ----------------------------------------------- */

/* Catches the signal, at start-up; warns if it cannot be caught. */
void snapshot_init(void);
/* The thread that writes the snapshots, started from the API's slow paths
 * (runtime_enter) with no lock held; started again in a fork child. */
extern bool snapshot_thread_running;
void snapshot_start_thread(void);
void snapshot_fork_child(void);

#pragma GCC visibility pop

#endif /* BUDDY_REPORT_H */
