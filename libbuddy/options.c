/* options.c: BUDDY_OPTIONS, read once at start-up without allocating.
 *
 * BUDDY_OPTIONS="purge_delay_ms=200,zones=2,stats=1,verbose=1" sets any of the
 * options in the table below. The string is read straight from environ
 * (os_getenv), parsed in place, and never copied. An unknown key or a bad
 * value prints one warning naming it and keeps the default; verbose=1 prints
 * every option in force and where it came from. Setuid programs ignore it.
 */
#include "base.h"

#include <string.h>

buddy_options_t options = {
    .purge_delay_ms = 1000,
    .zones = 4,
    .tcache_max = TCACHE_BIN_MAX,
    .stats = 0,
    .verbose = 0,
    .purge_madv_free = 0,
    .background_purge = 0,
    .thp = 0,
    .debug = 0,
    .abort_on_error = 1,
    .reclaim_idle = 1,
};

typedef struct option_spec {
  const char *name;
  long *value;
  long min, max;
  const char *help;
} option_spec_t;

static const option_spec_t option_table[] = {
    {"purge_delay_ms", &options.purge_delay_ms, 0, 3600000,
     "free pages go back to the OS this long after they were freed (0: at once)"},
    {"zones", &options.zones, 1, ZONES_MAX, "locked zones threads are spread over"},
    {"tcache_max", &options.tcache_max, 1, TCACHE_BIN_MAX, "objects per thread-cache bin at most"},
    {"stats", &options.stats, 0, 2, "print statistics at exit (1: text, 2: JSON)"},
    {"verbose", &options.verbose, 0, 1, "print the options in force at start-up"},
    {"purge_madv_free", &options.purge_madv_free, 0, 1, "purge with MADV_FREE instead of MADV_DONTNEED"},
    {"background_purge", &options.background_purge, 0, 1, "a thread purges while the program is idle"},
    {"thp", &options.thp, 0, 1, "ask for transparent huge pages on regions"},
    {"abort_on_error", &options.abort_on_error, 0, 1,
     "abort on heap misuse (0: warn and leave the block alone, for programs mixing allocators)"},
    {"debug", &options.debug, 0, 1, "fill freed small blocks and report writes to them on reuse (no caching)"},
    {"reclaim_idle", &options.reclaim_idle, 0, 1,
     "empty the caches of threads blocked in a system call for a whole purge period"},
};

#define OPTION_COUNT (sizeof option_table / sizeof option_table[0])

static const char *option_source[OPTION_COUNT];

/* ---- Output without stdio ------------------------------------------------ */

static void say(const char *s) {
  os_write_stderr(s, strlen(s));
}

static void say_long(long v) {
  char digits[24];
  size_t i = sizeof digits;
  bool negative = v < 0;
  unsigned long u = negative ? 0ul - (unsigned long)v : (unsigned long)v;
  do {
    digits[--i] = (char)('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (negative) digits[--i] = '-';
  os_write_stderr(digits + i, sizeof digits - i);
}

static void warn(const char *what, const char *key, size_t key_len) {
  say("buddymalloc: warning: BUDDY_OPTIONS: ");
  say(what);
  say(" '");
  os_write_stderr(key, key_len);
  say("', keeping the default\n");
}

/* ---- Parsing ------------------------------------------------------------- */

/* A decimal number filling [s, end) exactly. */
static bool parse_long(const char *s, const char *end, long *out) {
  long v = 0;
  if (s == end) return false;
  for (; s < end; s++) {
    if (*s < '0' || *s > '9' || v > 100000000000L) return false;
    v = v * 10 + (*s - '0');
  }
  *out = v;
  return true;
}

static void parse_pair(const char *key, const char *key_end, const char *val, const char *val_end, const char *source) {
  for (size_t i = 0; i < OPTION_COUNT; i++) {
    const option_spec_t *o = &option_table[i];
    if (strlen(o->name) != (size_t)(key_end - key) || strncmp(o->name, key, (size_t)(key_end - key)) != 0) continue;
    long v;
    if (val == NULL || !parse_long(val, val_end, &v) || v < o->min || v > o->max) {
      warn("bad value for", key, (size_t)((val_end != NULL ? val_end : key_end) - key));
      return;
    }
    *o->value = v;
    option_source[i] = source;
    return;
  }
  warn("unknown option", key, (size_t)(key_end - key));
}

static void parse_string(const char *s, const char *source) {
  while (*s != '\0') {
    const char *end = strchr(s, ',');
    if (end == NULL) end = s + strlen(s);
    const char *eq = memchr(s, '=', (size_t)(end - s));
    if (end > s) parse_pair(s, eq != NULL ? eq : end, eq != NULL ? eq + 1 : NULL, end, source);
    s = *end == ',' ? end + 1 : end;
  }
}

static void options_report(void) {
  say("buddymalloc: options in force:\n");
  for (size_t i = 0; i < OPTION_COUNT; i++) {
    say("  ");
    say(option_table[i].name);
    say("=");
    say_long(*option_table[i].value);
    say(" (");
    say(option_source[i] != NULL ? option_source[i] : "default");
    say(")  ");
    say(option_table[i].help);
    say("\n");
  }
}

void options_init(void) {
  const char *stats = os_getenv("BUDDY_STATS");
  if (stats != NULL && *stats != '\0' && strcmp(stats, "0") != 0) {
    options.stats = strcmp(stats, "json") == 0 ? 2 : 1;
    for (size_t i = 0; i < OPTION_COUNT; i++)
      if (option_table[i].value == &options.stats) option_source[i] = "BUDDY_STATS";
  }
  const char *s = os_getenv("BUDDY_OPTIONS");
  if (s != NULL) parse_string(s, "BUDDY_OPTIONS");
  if (options.verbose) options_report();
}
