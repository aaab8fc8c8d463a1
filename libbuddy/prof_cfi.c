/* prof_cfi.c: the frame rule of one address of code (prof.h), read
 * from the DWARF call frame information of the object that holds it; the
 * unwinder's cache miss (prof_unwind.c), so nothing here is on a path that
 * runs more than once per distinct call site.
 *
 * The steps, as libgcc's unwinder takes them:
 *  1. the object's PT_GNU_EH_FRAME segment (.eh_frame_hdr): glibc's
 *     _dl_find_object (2.35 on), which takes no lock and allocates nothing;
 *     built against an older glibc, dl_iterate_phdr, under the loader's
 *     lock (our callback takes no lock and allocates nothing, and prof_note
 *     holds no allocator lock: no cycle; but a fork while another thread is
 *     inside leaves that lock held in the child, as for libgcc there);
 *  2. its table of (initial location, FDE), sorted: a binary search for the
 *     last FDE starting at or below pc (the table encoded as every linker
 *     writes it, datarel|sdata4; any other: no rule);
 *  3. the FDE and its CIE: the CIE's initial instructions, then the FDE's up
 *     to pc (DWARF 5, section 6.4), for the three columns the walk follows:
 *     the CFA, rbp and the return address (rsp must be the CFA, as the
 *     x86-64 ABI has it: a rule for it ends the walk). The other registers'
 *     rules are read and ignored.
 * A CIE with augmentation 'S' is a signal frame: glibc's __restore_rt, whose
 * rules are expressions over the ucontext; it is recognised by its code
 * (mov $15, %rax; syscall: rt_sigreturn), as libgcc does, and the walk reads
 * the ucontext itself. Anything else the walk cannot follow (an expression
 * for the CFA, rbp or the return address: PLT stubs, realigned stacks by a
 * register; a return address in a register: glibc's *context functions; an
 * unknown instruction) is UNWIND_STOP: the stack ends there.
 *
 * The tables are the loaded objects' own, trusted as libgcc trusts them;
 * still every read stays inside its record's length, and an instruction
 * stream that ends early or a state stack that overflows is no rule.
 */
#include "prof.h"

#include <dlfcn.h>
#include <link.h>
#include <stddef.h>
#include <string.h>

/* Call frame instructions (DWARF 5, 7.24), and GNU's two. The first three
 * hold an operand in their low 6 bits. */
enum {
  DW_CFA_advance_loc = 0x40,
  DW_CFA_offset = 0x80,
  DW_CFA_restore = 0xc0,
  DW_CFA_nop = 0x00,
  DW_CFA_set_loc = 0x01,
  DW_CFA_advance_loc1 = 0x02,
  DW_CFA_advance_loc2 = 0x03,
  DW_CFA_advance_loc4 = 0x04,
  DW_CFA_offset_extended = 0x05,
  DW_CFA_restore_extended = 0x06,
  DW_CFA_undefined = 0x07,
  DW_CFA_same_value = 0x08,
  DW_CFA_register = 0x09,
  DW_CFA_remember_state = 0x0a,
  DW_CFA_restore_state = 0x0b,
  DW_CFA_def_cfa = 0x0c,
  DW_CFA_def_cfa_register = 0x0d,
  DW_CFA_def_cfa_offset = 0x0e,
  DW_CFA_def_cfa_expression = 0x0f,
  DW_CFA_expression = 0x10,
  DW_CFA_offset_extended_sf = 0x11,
  DW_CFA_def_cfa_sf = 0x12,
  DW_CFA_def_cfa_offset_sf = 0x13,
  DW_CFA_val_offset = 0x14,
  DW_CFA_val_offset_sf = 0x15,
  DW_CFA_val_expression = 0x16,
  DW_CFA_GNU_args_size = 0x2e,
  DW_CFA_GNU_negative_offset_extended = 0x2f,
};
#define CFI_OPERAND_MASK 0x3f
#define CFI_PRIMARY_MASK 0xc0

/* Pointer encodings of .eh_frame (the LSB's DW_EH_PE_*): a format in the
 * low nibble, how it applies in the next three bits, and indirection. */
enum {
  DW_EH_PE_absptr = 0x00,
  DW_EH_PE_uleb128 = 0x01,
  DW_EH_PE_udata2 = 0x02,
  DW_EH_PE_udata4 = 0x03,
  DW_EH_PE_udata8 = 0x04,
  DW_EH_PE_sleb128 = 0x09,
  DW_EH_PE_sdata2 = 0x0a,
  DW_EH_PE_sdata4 = 0x0b,
  DW_EH_PE_sdata8 = 0x0c,
  DW_EH_PE_pcrel = 0x10,
  DW_EH_PE_datarel = 0x30,
  DW_EH_PE_indirect = 0x80,
  DW_EH_PE_omit = 0xff,
};
#define CFI_PE_FORMAT_MASK 0x0f
#define CFI_PE_APPLY_MASK 0x70

/* x86-64's DWARF register numbers (psABI, figure 3.36). */
#define CFI_REG_RBP 6
#define CFI_REG_RSP 7
/* A CFA given by an expression, or not given at all. */
#define CFI_CFA_EXPRESSION UINT64_MAX
#define CFI_CFA_UNSET (UINT64_MAX - 1)

#define CFI_HDR_VERSION 1
#define CFI_HDR_FIELDS_MAX 32 /* the header's bytes before its table, at most */
#define CFI_RECORD_MAX ((uint64_t)1 << 24)
#define CFI_LENGTH_64 0xffffffffU /* a 64-bit length follows */
#define CFI_STATE_STACK 8         /* remember_state's depth: gcc nests 1 or 2 */
#define CFI_LEB128_BYTES_MAX 10

/* rt_sigreturn as glibc's __restore_rt calls it: mov $15, %rax; syscall. */
static const uint8_t cfi_sigreturn_code[] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};

/* ---- reading the tables ------------------------------------------------- */

/* Bytes [p, end) of one record; bad once a read went past end. */
typedef struct cfi_reader {
  const uint8_t *p, *end;
  bool bad;
} cfi_reader_t;

static bool cfi_take(cfi_reader_t *r, size_t n) {
  if (r->bad || (size_t)(r->end - r->p) < n) {
    r->bad = true;
    r->p = r->end;
    return false;
  }
  return true;
}

/* An n-byte little-endian unsigned number (n <= 8). */
static uint64_t cfi_fixed(cfi_reader_t *r, size_t n) {
  if (!cfi_take(r, n)) return 0;
  uint64_t v = 0;
  memcpy(&v, r->p, n);
  r->p += n;
  return v;
}

static uint64_t cfi_uleb(cfi_reader_t *r) {
  uint64_t v = 0;
  for (unsigned shift = 0; shift < 7 * CFI_LEB128_BYTES_MAX; shift += 7) {
    if (!cfi_take(r, 1)) return 0;
    uint8_t b = *r->p++;
    if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  r->bad = true;
  return 0;
}

static int64_t cfi_sleb(cfi_reader_t *r) {
  uint64_t v = 0;
  for (unsigned shift = 0; shift < 7 * CFI_LEB128_BYTES_MAX; shift += 7) {
    if (!cfi_take(r, 1)) return 0;
    uint8_t b = *r->p++;
    if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      if (shift + 7 < 64 && (b & 0x40)) v |= ~(uint64_t)0 << (shift + 7); /* sign-extend */
      return (int64_t)v;
    }
  }
  r->bad = true;
  return 0;
}

/* A pointer in encoding enc; datarel counts from base (0: not allowed).
 * An indirect pointer's value is the address that holds it: only the
 * personality routine's is ever indirect, and it is skipped. */
static uintptr_t cfi_pointer(cfi_reader_t *r, uint8_t enc, uintptr_t base) {
  if (enc == DW_EH_PE_omit) return 0;
  uintptr_t field = (uintptr_t)r->p;
  uint64_t v;
  switch (enc & CFI_PE_FORMAT_MASK) {
  case DW_EH_PE_absptr:
  case DW_EH_PE_udata8:
  case DW_EH_PE_sdata8:
    v = cfi_fixed(r, 8);
    break;
  case DW_EH_PE_uleb128:
    v = cfi_uleb(r);
    break;
  case DW_EH_PE_udata2:
    v = cfi_fixed(r, 2);
    break;
  case DW_EH_PE_udata4:
    v = cfi_fixed(r, 4);
    break;
  case DW_EH_PE_sleb128:
    v = (uint64_t)cfi_sleb(r);
    break;
  case DW_EH_PE_sdata2:
    v = (uint64_t)(int64_t)(int16_t)cfi_fixed(r, 2);
    break;
  case DW_EH_PE_sdata4:
    v = (uint64_t)(int64_t)(int32_t)cfi_fixed(r, 4);
    break;
  default:
    r->bad = true;
    return 0;
  }
  switch (enc & CFI_PE_APPLY_MASK) {
  case 0:
    return v;
  case DW_EH_PE_pcrel:
    return v + field;
  case DW_EH_PE_datarel:
    if (base != 0) return v + base;
    break;
  default:
    break; /* textrel, funcrel, aligned: not on x86-64 */
  }
  r->bad = true;
  return 0;
}

/* The record (CIE or FDE) at p: a reader over what follows its length;
 * false for the table's terminator or a length beyond reason. */
static bool cfi_record(const uint8_t *p, cfi_reader_t *r) {
  uint32_t len32;
  memcpy(&len32, p, sizeof len32);
  p += sizeof len32;
  uint64_t len = len32;
  if (len32 == CFI_LENGTH_64) {
    memcpy(&len, p, sizeof len);
    p += sizeof len;
  }
  if (len == 0 || len > CFI_RECORD_MAX) return false;
  *r = (cfi_reader_t){.p = p, .end = p + len};
  return true;
}

/* ---- CIEs and FDEs ------------------------------------------------------ */

typedef struct cfi_cie {
  uint64_t code_align;
  int64_t data_align;
  uint64_t ra_column; /* the return address's register number */
  uint8_t fde_enc;    /* the FDEs' pointers ('R') */
  bool fde_aug;       /* the FDEs have augmentation data ('z') */
  bool signal;        /* 'S' */
  cfi_reader_t insns; /* the initial instructions */
} cfi_cie_t;

/* The augmentation data of a 'z' CIE (aug: the string after 'z'). */
static void cfi_augmentation(const char *aug, cfi_reader_t *r, cfi_cie_t *c) {
  uint64_t len = cfi_uleb(r);
  if (!cfi_take(r, len)) return;
  cfi_reader_t data = {.p = r->p, .end = r->p + len};
  r->p += len;
  c->fde_aug = true;
  for (; *aug != '\0' && !data.bad; aug++) {
    switch (*aug) {
    case 'R':
      c->fde_enc = (uint8_t)cfi_fixed(&data, 1);
      break;
    case 'L':
      cfi_fixed(&data, 1);
      break; /* the LSDA's encoding */
    case 'P': {
      uint8_t enc = (uint8_t)cfi_fixed(&data, 1);
      cfi_pointer(&data, enc & (uint8_t)~DW_EH_PE_indirect, 0); /* the personality */
      break;
    }
    case 'S':
      c->signal = true;
      break;
    default:
      return; /* unknown: its data is the rest, which 'z' lets us skip */
    }
  }
  if (data.bad) r->bad = true;
}

static bool cfi_parse_cie(const uint8_t *at, cfi_cie_t *c) {
  cfi_reader_t r;
  if (!cfi_record(at, &r) || cfi_fixed(&r, 4) != 0) return false; /* a CIE's id is 0 */
  uint8_t version = (uint8_t)cfi_fixed(&r, 1);
  if (version != 1 && version != 3 && version != 4) return false;
  const char *aug = (const char *)r.p;
  size_t aug_len = strnlen(aug, (size_t)(r.end - r.p));
  if (!cfi_take(&r, aug_len + 1)) return false;
  r.p += aug_len + 1;
  if (version == 4 && (cfi_fixed(&r, 1) != sizeof(void *) || cfi_fixed(&r, 1) != 0)) return false;
  *c = (cfi_cie_t){.fde_enc = DW_EH_PE_absptr};
  c->code_align = cfi_uleb(&r);
  c->data_align = cfi_sleb(&r);
  c->ra_column = version == 1 ? cfi_fixed(&r, 1) : cfi_uleb(&r);
  if (aug[0] == 'z') {
    cfi_augmentation(aug + 1, &r, c);
  } else if (aug[0] != '\0') {
    return false; /* "eh" and the like, from before 'z' */
  }
  if (c->ra_column == CFI_REG_RBP || c->ra_column == CFI_REG_RSP) return false;
  c->insns = r;
  return !r.bad;
}

/* ---- the CFA program ------------------------------------------------------ */

typedef enum cfi_how {
  CFI_SAME = 0, /* unchanged (also what no rule means) */
  CFI_UNDEFINED,
  CFI_OFFSET, /* saved at CFA + off */
  CFI_OTHER,  /* in a register, an expression, or a value rule: not followed */
} cfi_how_t;

/* The columns followed: rbp, rsp and the return address. */
enum { CFI_COL_RBP, CFI_COL_RSP, CFI_COL_RA, CFI_COLUMNS };

typedef struct cfi_state {
  uint64_t cfa_reg; /* a register number, CFI_CFA_EXPRESSION or CFI_CFA_UNSET */
  int64_t cfa_off;
  uint8_t how[CFI_COLUMNS];
  int64_t off[CFI_COLUMNS];
} cfi_state_t;

/* One run of a CFA program: the CIE's (initial == NULL) or an FDE's. */
typedef struct cfi_run {
  const cfi_cie_t *cie;
  const cfi_state_t *initial; /* the CIE's rules, for DW_CFA_restore */
  uintptr_t loc, pc;          /* the row's address; the one wanted */
  cfi_state_t stack[CFI_STATE_STACK];
  unsigned depth;
} cfi_run_t;

static int cfi_column(const cfi_cie_t *c, uint64_t reg) {
  if (reg == CFI_REG_RBP) return CFI_COL_RBP;
  if (reg == CFI_REG_RSP) return CFI_COL_RSP;
  return reg == c->ra_column ? CFI_COL_RA : -1;
}

static void cfi_set(const cfi_run_t *run, cfi_state_t *s, uint64_t reg, cfi_how_t how, int64_t off) {
  int col = cfi_column(run->cie, reg);
  if (col < 0) return;
  s->how[col] = (uint8_t)how;
  s->off[col] = off;
}

static void cfi_restore(const cfi_run_t *run, cfi_state_t *s, uint64_t reg) {
  int col = cfi_column(run->cie, reg);
  if (col < 0) return;
  s->how[col] = run->initial != NULL ? run->initial->how[col] : CFI_SAME;
  s->off[col] = run->initial != NULL ? run->initial->off[col] : 0;
}

/* A factored offset: n times the CIE's data alignment (wrapping, as the
 * tables never overflow it). */
static int64_t cfi_factored(const cfi_run_t *run, uint64_t n) {
  return (int64_t)(n * (uint64_t)run->cie->data_align);
}

/* Moves the row to loc + delta code units; false once past pc (the rows
 * from there on are not pc's). */
static bool cfi_advance(cfi_run_t *run, uint64_t delta) {
  run->loc += delta * run->cie->code_align;
  return run->loc <= run->pc;
}

/* Skips a DWARF expression (a length, then its bytes). */
static void cfi_skip_block(cfi_reader_t *r) {
  uint64_t len = cfi_uleb(r);
  if (cfi_take(r, len)) r->p += len;
}

/* The instructions whose operand is a register and an offset or nothing:
 * false for any other. */
static bool cfi_register_op(cfi_run_t *run, cfi_reader_t *r, cfi_state_t *s, uint8_t op) {
  uint64_t reg = cfi_uleb(r);
  switch (op) {
  case DW_CFA_offset_extended:
    cfi_set(run, s, reg, CFI_OFFSET, cfi_factored(run, cfi_uleb(r)));
    break;
  case DW_CFA_offset_extended_sf:
    cfi_set(run, s, reg, CFI_OFFSET, cfi_factored(run, (uint64_t)cfi_sleb(r)));
    break;
  case DW_CFA_GNU_negative_offset_extended:
    cfi_set(run, s, reg, CFI_OFFSET, -cfi_factored(run, cfi_uleb(r)));
    break;
  case DW_CFA_restore_extended:
    cfi_restore(run, s, reg);
    break;
  case DW_CFA_undefined:
    cfi_set(run, s, reg, CFI_UNDEFINED, 0);
    break;
  case DW_CFA_same_value:
    cfi_set(run, s, reg, CFI_SAME, 0);
    break;
  case DW_CFA_register:
    cfi_set(run, s, reg, cfi_uleb(r) == reg ? CFI_SAME : CFI_OTHER, 0);
    break;
  case DW_CFA_val_offset:
  case DW_CFA_val_offset_sf:
    cfi_uleb(r); /* the same bytes as an sleb's */
    cfi_set(run, s, reg, CFI_OTHER, 0);
    break;
  case DW_CFA_expression:
  case DW_CFA_val_expression:
    cfi_skip_block(r);
    cfi_set(run, s, reg, CFI_OTHER, 0);
    break;
  default:
    return false;
  }
  return true;
}

/* The instructions that define the CFA or move the row or the state stack:
 * *stop once past pc; false for an unknown instruction. */
static bool cfi_other_op(cfi_run_t *run, cfi_reader_t *r, cfi_state_t *s, uint8_t op, bool *stop) {
  switch (op) {
  case DW_CFA_nop:
    break;
  case DW_CFA_set_loc:
    run->loc = cfi_pointer(r, run->cie->fde_enc, 0);
    *stop = run->loc > run->pc;
    break;
  case DW_CFA_advance_loc1:
    *stop = !cfi_advance(run, cfi_fixed(r, 1));
    break;
  case DW_CFA_advance_loc2:
    *stop = !cfi_advance(run, cfi_fixed(r, 2));
    break;
  case DW_CFA_advance_loc4:
    *stop = !cfi_advance(run, cfi_fixed(r, 4));
    break;
  case DW_CFA_remember_state: /* the CFA too, as gcc means it and libgcc reads it */
    if (run->depth == CFI_STATE_STACK) return false;
    run->stack[run->depth++] = *s;
    break;
  case DW_CFA_restore_state:
    if (run->depth == 0) return false;
    *s = run->stack[--run->depth];
    break;
  case DW_CFA_def_cfa:
    s->cfa_reg = cfi_uleb(r);
    s->cfa_off = (int64_t)cfi_uleb(r);
    break;
  case DW_CFA_def_cfa_sf:
    s->cfa_reg = cfi_uleb(r);
    s->cfa_off = cfi_factored(run, (uint64_t)cfi_sleb(r));
    break;
  case DW_CFA_def_cfa_register:
    s->cfa_reg = cfi_uleb(r);
    break;
  case DW_CFA_def_cfa_offset:
    s->cfa_off = (int64_t)cfi_uleb(r);
    break;
  case DW_CFA_def_cfa_offset_sf:
    s->cfa_off = cfi_factored(run, (uint64_t)cfi_sleb(r));
    break;
  case DW_CFA_def_cfa_expression:
    cfi_skip_block(r);
    s->cfa_reg = CFI_CFA_EXPRESSION;
    break;
  case DW_CFA_GNU_args_size:
    cfi_uleb(r);
    break;
  default:
    return cfi_register_op(run, r, s, op);
  }
  return true;
}

/* Runs the instructions of r into s, up to the row of run->pc; false if
 * they cannot be followed. */
static bool cfi_execute(cfi_run_t *run, cfi_reader_t r, cfi_state_t *s) {
  while (r.p < r.end) {
    uint8_t op = *r.p++;
    bool stop = false;
    switch (op & CFI_PRIMARY_MASK) {
    case DW_CFA_advance_loc:
      stop = !cfi_advance(run, op & CFI_OPERAND_MASK);
      break;
    case DW_CFA_offset:
      cfi_set(run, s, op & CFI_OPERAND_MASK, CFI_OFFSET, cfi_factored(run, cfi_uleb(&r)));
      break;
    case DW_CFA_restore:
      cfi_restore(run, s, op & CFI_OPERAND_MASK);
      break;
    default:
      if (!cfi_other_op(run, &r, s, op, &stop)) return false;
      break;
    }
    if (r.bad) return false;
    if (stop) break;
  }
  return true;
}

/* ---- the rule --------------------------------------------------------- */

static bool cfi_fits(int64_t v, int64_t lo, int64_t hi) {
  return v >= lo && v <= hi;
}

/* The walk's rule for the state of the CFA program at pc. */
static unwind_rule_t cfi_rule_of(const cfi_state_t *s) {
  const unwind_rule_t stop = unwind_stop_rule();
  if (s->how[CFI_COL_RA] == CFI_UNDEFINED) return unwind_rule(UNWIND_END, UNWIND_BP_LOST, 0, 0, 0);
  if (s->how[CFI_COL_RA] != CFI_OFFSET || !cfi_fits(s->off[CFI_COL_RA], INT8_MIN, INT8_MAX)) return stop;
  if (s->how[CFI_COL_RSP] != CFI_SAME || !cfi_fits(s->cfa_off, INT32_MIN, INT32_MAX)) return stop;
  unwind_kind_t kind;
  if (s->cfa_reg == CFI_REG_RSP) kind = UNWIND_CFA_RSP;
  else if (s->cfa_reg == CFI_REG_RBP) kind = UNWIND_CFA_RBP;
  else return stop;
  unwind_bp_t bp = UNWIND_BP_LOST;
  int64_t bp_off = 0;
  if (s->how[CFI_COL_RBP] == CFI_SAME) {
    bp = UNWIND_BP_SAME;
  } else if (s->how[CFI_COL_RBP] == CFI_OFFSET && cfi_fits(s->off[CFI_COL_RBP], INT16_MIN, INT16_MAX)) {
    bp = UNWIND_BP_SAVED;
    bp_off = s->off[CFI_COL_RBP];
  }
  return unwind_rule(kind, bp, (int8_t)s->off[CFI_COL_RA], (int16_t)bp_off, (int32_t)s->cfa_off);
}

/* A signal frame's rule, if pc + 1 (pc: a return address less 1) starts
 * rt_sigreturn's call within the FDE's range [begin, end). */
static unwind_rule_t cfi_signal_rule(uintptr_t pc, uintptr_t begin, uintptr_t end) {
  uintptr_t code = pc + 1;
  if (code < begin || code > end || end - code < sizeof cfi_sigreturn_code ||
      memcmp((const void *)code, cfi_sigreturn_code, sizeof cfi_sigreturn_code) != 0)
    return unwind_stop_rule();
  return unwind_rule(UNWIND_SIGNAL, UNWIND_BP_LOST, 0, 0, 0);
}

/* The rule at pc from the FDE at fde, if it covers pc. */
static unwind_rule_t cfi_rule_of_fde(const uint8_t *fde, uintptr_t pc) {
  const unwind_rule_t stop = unwind_stop_rule();
  cfi_reader_t r;
  if (!cfi_record(fde, &r)) return stop;
  const uint8_t *cie_pointer = r.p;
  uint32_t cie_back = (uint32_t)cfi_fixed(&r, 4);
  cfi_cie_t cie;
  if (cie_back == 0 || !cfi_parse_cie(cie_pointer - cie_back, &cie)) return stop;
  uintptr_t begin = cfi_pointer(&r, cie.fde_enc, 0);
  uintptr_t range = cfi_pointer(&r, cie.fde_enc & CFI_PE_FORMAT_MASK, 0);
  if (r.bad || pc < begin || pc - begin >= range) return stop;
  if (cie.signal) return cfi_signal_rule(pc, begin, begin + range);
  if (cie.fde_aug) cfi_skip_block(&r); /* the LSDA's pointer */
  if (r.bad) return stop;
  cfi_run_t run = {.cie = &cie, .loc = begin, .pc = pc};
  cfi_state_t initial = {.cfa_reg = CFI_CFA_UNSET};
  if (!cfi_execute(&run, cie.insns, &initial)) return stop;
  run.initial = &initial;
  run.depth = 0;
  run.loc = begin;
  cfi_state_t s = initial;
  if (!cfi_execute(&run, r, &s)) return stop;
  return cfi_rule_of(&s);
}

/* ---- finding the FDE ---------------------------------------------------- */

/* The FDE for pc in the object whose .eh_frame_hdr is at hdr: the last of
 * its table that starts at or below pc (NULL if none). */
static const uint8_t *cfi_search(const uint8_t *hdr, uintptr_t pc) {
  const uint8_t table_enc = DW_EH_PE_datarel | DW_EH_PE_sdata4;
  if (hdr[0] != CFI_HDR_VERSION || hdr[3] != table_enc || hdr[2] == DW_EH_PE_omit) return NULL;
  cfi_reader_t r = {.p = hdr + 4, .end = hdr + CFI_HDR_FIELDS_MAX};
  cfi_pointer(&r, hdr[1], (uintptr_t)hdr); /* .eh_frame's address: not needed */
  uint64_t count = cfi_pointer(&r, hdr[2], (uintptr_t)hdr);
  if (r.bad || count == 0) return NULL;
  const uint8_t *table = r.p; /* count pairs of (initial location, FDE) */
  size_t lo = 0, hi = count;  /* the answer is below hi; entry lo - 1 starts at or below pc */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int32_t start;
    memcpy(&start, table + mid * 2 * sizeof start, sizeof start);
    if ((uintptr_t)hdr + (uintptr_t)(intptr_t)start <= pc) lo = mid + 1;
    else hi = mid;
  }
  if (lo == 0) return NULL;
  int32_t fde;
  memcpy(&fde, table + (lo - 1) * 2 * sizeof fde + sizeof fde, sizeof fde);
  return hdr + fde;
}

typedef struct cfi_phdr_find {
  uintptr_t pc;
  const uint8_t *hdr;
} cfi_phdr_find_t;

/* dl_iterate_phdr: the PT_GNU_EH_FRAME of the object with a PT_LOAD
 * segment holding pc. */
static int cfi_phdr_callback(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  cfi_phdr_find_t *find = arg;
  const ElfW(Phdr) *eh = NULL;
  bool holds = false;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
    if (ph->p_type == PT_LOAD && find->pc >= lo && find->pc - lo < ph->p_memsz) holds = true;
    if (ph->p_type == PT_GNU_EH_FRAME) eh = ph;
  }
  if (!holds) return 0;
  find->hdr = eh != NULL ? (const uint8_t *)(info->dlpi_addr + eh->p_vaddr) : NULL;
  return 1;
}

#ifdef DLFO_EH_SEGMENT_TYPE
static const bool cfi_have_find_object = DLFO_EH_SEGMENT_TYPE == PT_GNU_EH_FRAME;
static const uint8_t *cfi_find_object(uintptr_t pc) {
  struct dl_find_object found;
  if (_dl_find_object((void *)pc, &found) != 0) return NULL;
  return found.dlfo_eh_frame;
}
#else
static const bool cfi_have_find_object = false;
static const uint8_t *cfi_find_object(uintptr_t pc) {
  (void)pc;
  return NULL;
}
#endif

/* The .eh_frame_hdr of the object holding pc; NULL if none (code of no
 * object: a JIT's; or an object without one). */
static const uint8_t *cfi_eh_frame_hdr(uintptr_t pc) {
  if (cfi_have_find_object) return cfi_find_object(pc);
  cfi_phdr_find_t find = {.pc = pc};
  dl_iterate_phdr(cfi_phdr_callback, &find);
  return find.hdr;
}

unwind_rule_t prof_cfi_rule(uintptr_t pc) {
  const uint8_t *hdr = cfi_eh_frame_hdr(pc);
  const uint8_t *fde = hdr != NULL ? cfi_search(hdr, pc) : NULL;
  if (fde == NULL) return unwind_stop_rule();
  return cfi_rule_of_fde(fde, pc);
}
