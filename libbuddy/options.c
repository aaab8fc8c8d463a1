/* options.c: BUDDY_OPTIONS and BUDDY_STATS, read once at start-up without
 * allocating.
 *
 * BUDDY_OPTIONS="purge_delay_ms=200,zones=2,stats=json,verbose=1" sets any of
 * the options in the table below. The string is read straight from environ
 * (os_getenv) and parsed in place; only a path (stats_file, prof_prefix) is
 * copied, into a static buffer, since the program may change its environment later.
 * Values are decimal numbers, or a word where the table gives one (stats=json
 * is stats=2): BUDDY_STATS takes the same values as stats=. An unknown key or
 * a bad value prints one warning that says what the value must be and what
 * is kept; verbose=1 prints every option in force and where it came from.
 * Setuid programs ignore both variables (os_getenv).
 */
#include "base.h"

#include <signal.h>
#include <string.h>

buddy_options_t options = {
    .purge_delay_ms = 1000,
    .zones = 4,
    .tcache_max = TCACHE_BIN_MAX,
    .stats = 0,
    .verbose = 0,
    .quiet = 0,
    .purge_madv_free = 0,
    .background_purge = 0,
    .thp = 0,
    .debug = 0,
    .secure = 0,
    .quarantine_kb = 4096,
    .abort_on_error = 1,
    .reclaim_idle = 1,
    .stats_signal = 0,
    .prof = 0,
    .prof_sample = 512 * 1024,
    .prof_signal = 0,
    .leaks = 0,
    .stats_file = NULL,
    .prof_prefix = NULL,
};

/* A word that stands for a value. */
typedef struct option_word {
  const char *word;
  long value;
} option_word_t;

static const option_word_t stats_words[] = {{"text", 1}, {"json", 2}, {NULL, 0}};
static const option_word_t signal_words[] = {
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {NULL, 0}};

/* Zero-initialised: their pages cost nothing unless the path is given. */
static char options_stats_path[OPTIONS_PATH_MAX];
static char options_prof_path[OPTIONS_PATH_MAX];

typedef struct option_spec {
  const char *name;
  long *value;       /* a number; NULL for a path (stats_file, prof_prefix) */
  const char **path; /* a path's option, and the buffer it is copied into */
  char *path_buf;
  long min, max;
  const option_word_t *words; /* words for values, or NULL */
  const char *range;          /* what a value must be, when not min-max */
  const char *help;
} option_spec_t;

static const option_spec_t option_table[] = {
    {"purge_delay_ms", &options.purge_delay_ms, NULL, NULL, 0, 3600000, NULL, NULL,
     "free pages go back to the OS this long after they were freed (0: at once)"},
    {"zones", &options.zones, NULL, NULL, 1, ZONES_MAX, NULL, NULL, "locked zones threads are spread over"},
    {"tcache_max", &options.tcache_max, NULL, NULL, 1, TCACHE_BIN_MAX, NULL, NULL,
     "objects per thread-cache bin at most"},
    {"stats", &options.stats, NULL, NULL, 0, 2, stats_words, NULL, "statistics at exit: 0 none, 1 or text, 2 or json"},
    {"stats_file", NULL, &options.stats_file, options_stats_path, 0, 0, NULL, "a path (%p: the pid)",
     "write the statistics there, appended, instead of stderr (%p: the pid)"},
    {"stats_signal", &options.stats_signal, NULL, NULL, 0, 64, signal_words,
     "0 (none), a signal number 1-64, USR1 or USR2", "on this signal, write the statistics as at exit (0: none)"},
    {"verbose", &options.verbose, NULL, NULL, 0, 1, NULL, NULL, "print the options in force at start-up"},
    {"quiet", &options.quiet, NULL, NULL, 0, 1, NULL, NULL,
     "print no warning, about the options or the statistics' file (misuse is still reported)"},
    {"purge_madv_free", &options.purge_madv_free, NULL, NULL, 0, 1, NULL, NULL,
     "purge with MADV_FREE instead of MADV_DONTNEED"},
    {"background_purge", &options.background_purge, NULL, NULL, 0, 1, NULL, NULL,
     "a thread purges while the program is idle"},
    {"thp", &options.thp, NULL, NULL, 0, 1, NULL, NULL, "ask for transparent huge pages on regions"},
    {"abort_on_error", &options.abort_on_error, NULL, NULL, 0, 1, NULL, NULL,
     "abort on heap misuse (0: warn and leave the block alone, for programs mixing allocators)"},
    {"debug", &options.debug, NULL, NULL, 0, 1, NULL, NULL,
     "fill freed small blocks and report writes to them on reuse (no caching)"},
    {"secure", &options.secure, NULL, NULL, 0, 1, NULL, NULL,
     "secure mode: canaries after blocks, freed blocks filled, checked and held in a quarantine, random reuse "
     "(implies debug=1)"},
    {"quarantine_kb", &options.quarantine_kb, NULL, NULL, 0, 1048576, NULL, NULL,
     "secure mode: KiB of freed blocks held back from reuse, oldest first, per zone"},
    {"reclaim_idle", &options.reclaim_idle, NULL, NULL, 0, 1, NULL, NULL,
     "empty the caches of threads blocked in a system call for a whole purge period"},
    {"prof", &options.prof, NULL, NULL, 0, 1, NULL, NULL,
     "sample allocations (about one per prof_sample bytes) and write a heap profile at exit"},
    {"prof_sample", &options.prof_sample, NULL, NULL, 1, (long)1 << 40, NULL, NULL,
     "mean bytes allocated between two samples (prof=1, leaks=1)"},
    {"prof_signal", &options.prof_signal, NULL, NULL, 0, 64, signal_words,
     "0 (none), a signal number 1-64, USR1 or USR2", "on this signal, write a heap profile (prof=1; 0: none)"},
    {"leaks", &options.leaks, NULL, NULL, 0, 1, NULL, NULL,
     "sample allocations and report the blocks still live at exit, by stack (stderr and a file)"},
    {"prof_prefix", NULL, &options.prof_prefix, options_prof_path, 0, 0, NULL, "a path (%p: the pid)",
     "the heap profile goes to PREFIX.heap, the leak report to PREFIX.leaks (default buddy.%p)"},
};

#define OPTION_COUNT (sizeof option_table / sizeof option_table[0])

static const char *option_source[OPTION_COUNT];

/* ---- Text without stdio --------------------------------------------------- */

/* v in decimal, in buf (24 bytes); returns where the digits start. */
static const char *decimal(char *buf, long v) {
  size_t i = 23;
  bool negative = v < 0;
  unsigned long u = negative ? 0ul - (unsigned long)v : (unsigned long)v;
  buf[i] = '\0';
  do {
    buf[--i] = (char)('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (negative) buf[--i] = '-';
  return buf + i;
}

/* A bounded string builder: what does not fit is cut off. */
typedef struct text {
  char *buf;
  size_t len, size;
} text_t;

static void text_add(text_t *t, const char *s, size_t n) {
  if (n > t->size - 1 - t->len) n = t->size - 1 - t->len;
  memcpy(t->buf + t->len, s, n);
  t->len += n;
  t->buf[t->len] = '\0';
}

static void text_add_str(text_t *t, const char *s) {
  text_add(t, s, strlen(s));
}

static void say(const char *s) {
  os_write_stderr(s, strlen(s));
}

/* What a value of o must be: "1-6", "0 or 1", "0, 1 or text, 2 or json". */
static void option_range(const option_spec_t *o, text_t *t) {
  char digits[24];
  if (o->range != NULL) return text_add_str(t, o->range);
  if (o->max - o->min > 2) {
    text_add_str(t, decimal(digits, o->min));
    text_add_str(t, "-");
    return text_add_str(t, decimal(digits, o->max));
  }
  for (long v = o->min; v <= o->max; v++) {
    if (v != o->min) text_add_str(t, v == o->max && o->words == NULL ? " or " : ", ");
    text_add_str(t, decimal(digits, v));
    for (const option_word_t *w = o->words; w != NULL && w->word != NULL; w++)
      if (w->value == v) {
        text_add_str(t, " or ");
        text_add_str(t, w->word);
      }
  }
}

/* The value o has now, as the verbose report and the warnings print it. */
static const char *option_value_text(const option_spec_t *o, char *digits) {
  if (o->value != NULL) return decimal(digits, *o->value);
  return *o->path != NULL ? *o->path : o->path == &options.stats_file ? "stderr" : "buddy.%p";
}

/* "BUDDY_OPTIONS: zones=99: must be 1-6, keeping 4" (label: what was given). */
static void warn_bad_value(const option_spec_t *o, const char *label, const char *label2, size_t label2_len) {
  char range[160], given[160], digits[24];
  text_t r = {range, 0, sizeof range}, g = {given, 0, sizeof given};
  range[0] = given[0] = '\0';
  option_range(o, &r);
  text_add(&g, label2, label2_len);
  base_warning(label, given, ": must be ", range, ", keeping ", option_value_text(o, digits), (const char *)NULL);
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

static bool parse_word(const option_word_t *words, const char *s, const char *end, long *out) {
  for (const option_word_t *w = words; w != NULL && w->word != NULL; w++)
    if (strlen(w->word) == (size_t)(end - s) && strncmp(w->word, s, (size_t)(end - s)) == 0) {
      *out = w->value;
      return true;
    }
  return false;
}

/* A path (stats_file, prof_prefix): copied, and made absolute against the
 * working directory at start-up, so that a program that changes directory
 * writes where asked. */
static bool set_path(const option_spec_t *o, const char *s, const char *end) {
  size_t n = (size_t)(end - s), at = 0;
  char *buf = o->path_buf;
  if (n == 0) return false;
  if (*s != '/') {
    size_t cwd = os_current_directory(buf, OPTIONS_PATH_MAX);
    if (cwd == 0) return false;
    at = cwd;
    if (buf[at - 1] != '/') buf[at++] = '/';
  }
  if (at + n >= OPTIONS_PATH_MAX) return false;
  memcpy(buf + at, s, n);
  buf[at + n] = '\0';
  *o->path = buf;
  return true;
}

/* Sets o from [val, val_end) (val NULL: "key" with no "="); false if the
 * value is not one o takes, o unchanged. */
static bool option_set(const option_spec_t *o, const char *val, const char *val_end) {
  if (val == NULL) return false;
  if (o->value == NULL) return set_path(o, val, val_end);
  long v;
  if (!parse_long(val, val_end, &v) && !parse_word(o->words, val, val_end, &v)) return false;
  if (v < o->min || v > o->max) return false;
  *o->value = v;
  return true;
}

static void parse_pair(const char *key, const char *key_end, const char *val, const char *val_end, const char *source) {
  for (size_t i = 0; i < OPTION_COUNT; i++) {
    const option_spec_t *o = &option_table[i];
    if (strlen(o->name) != (size_t)(key_end - key) || strncmp(o->name, key, (size_t)(key_end - key)) != 0) continue;
    if (option_set(o, val, val_end)) option_source[i] = source;
    else warn_bad_value(o, "BUDDY_OPTIONS: ", key, (size_t)((val != NULL ? val_end : key_end) - key));
    return;
  }
  char name[64];
  text_t t = {name, 0, sizeof name};
  name[0] = '\0';
  text_add(&t, key, (size_t)(key_end - key));
  base_warning("BUDDY_OPTIONS: unknown option '", name, "', ignored (verbose=1 lists the options)", (const char *)NULL);
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
  char digits[24];
  say("buddymalloc: options in force:\n");
  for (size_t i = 0; i < OPTION_COUNT; i++) {
    say("  ");
    say(option_table[i].name);
    say("=");
    say(option_value_text(&option_table[i], digits));
    say(" (");
    say(option_source[i] != NULL ? option_source[i] : "default");
    say(")  ");
    say(option_table[i].help);
    say("\n");
  }
}

/* BUDDY_STATS takes what stats= takes; empty is the same as unset. A
 * stats= in BUDDY_OPTIONS, read after it, wins. */
startup_code static void options_read_stats_variable(void) {
  static const char name[] startup_data = "BUDDY_STATS";
  const char *value = os_getenv(name);
  if (value == NULL || *value == '\0') return;
  for (size_t i = 0; i < OPTION_COUNT; i++) {
    const option_spec_t *o = &option_table[i];
    if (o->value != &options.stats) continue;
    if (option_set(o, value, value + strlen(value))) option_source[i] = "BUDDY_STATS";
    else warn_bad_value(o, "BUDDY_STATS=", value, strlen(value));
  }
}

/* quiet=1 anywhere in the string silences the warnings of the options
 * before it too: it is looked for first. */
static void options_find_quiet(const char *s) {
  static const char quiet[] = "quiet=1";
  for (const char *at = s; at != NULL; at = strchr(at, ',')) {
    if (*at == ',') at++;
    if (strncmp(at, quiet, sizeof quiet - 1) == 0 && (at[sizeof quiet - 1] == ',' || at[sizeof quiet - 1] == '\0'))
      options.quiet = 1, base_warnings_off = true;
  }
}

startup_code void options_init(void) {
  static const char name[] startup_data = "BUDDY_OPTIONS";
  const char *s = os_getenv(name);
  if (s != NULL) options_find_quiet(s);
  options_read_stats_variable();
  if (s != NULL) parse_string(s, "BUDDY_OPTIONS");
  if (options.secure) options.debug = 1; /* no caching: every block passes the checks */
  if (options.secure && options_sampling()) {
    /* Secure blocks carry their own trailers and go to the quarantine: a
     * sampled one, a page run of its own, would be neither. */
    base_warning("BUDDY_OPTIONS: secure=1 samples nothing, so prof and leaks are off", (const char *)NULL);
    options.prof = options.leaks = 0;
  }
  if (options.verbose) options_report();
}
