/*
 * The CPU's MTRRs as the loader left them: CPUID facts, MTRRcap, MTRRdefType,
 * the fixed-range and the variable-range MSRs.  pvhcheck only reads and
 * reports them; the tests compute what a firmware should have written.
 */
#ifndef PVHCHECK_MTRR_H
#define PVHCHECK_MTRR_H

/* Reads CPUID and (with CPUID.1:EDX MTRR and MSR) every MTRR MSR; prints them. */
void mtrr_report(void);

/* mtrr_msrs_readable: no MTRR MSR that MTRRcap promises raised #GP. */
void mtrr_checks(void);

#endif
