/*
 * One check's result: problems collected into a detail string, then printed
 * as "PVHCHECK check <name> ok" (no problem) or "... FAIL <detail>".  Shared
 * by checks.c and the table checks (smbios.c, mptable.c, pcie.c, ...).
 */
#ifndef PVHCHECK_CHECK_H
#define PVHCHECK_CHECK_H

#include <stdint.h>

struct detail {
    char buf[240];
    uint32_t len;
};

/* Starts the next problem, "; "-separated from the previous one. */
void d_str(struct detail *d, const char *s);
/* Appends to the current problem, no separator. */
void d_more(struct detail *d, const char *s);
void d_hex(struct detail *d, uint64_t v);   /* 0x-hex */
void d_dec(struct detail *d, uint32_t v);

/* Prints the check's line; counts it when it failed. */
void check_report(const char *name, const struct detail *d);

/* Failed checks since the last check_reset. */
void check_reset(void);
uint32_t check_failures(void);

#endif
