/*
 * CPUID and a fault-tolerant RDMSR.  rdmsr_safe runs with pvhcheck's own IDT
 * (one #GP gate, cpu.c) between msr_begin and msr_end, so an MSR the CPU does
 * not have is reported as such instead of ending the run in a triple fault;
 * msr_end puts back the IDT the loader left.
 */
#ifndef PVHCHECK_CPU_H
#define PVHCHECK_CPU_H

#include <stdbool.h>
#include <stdint.h>

struct cpuid_regs {
    uint32_t eax, ebx, ecx, edx;
};

static inline struct cpuid_regs cpuid(uint32_t leaf)
{
    struct cpuid_regs r;
    __asm__ volatile("cpuid"
                     : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx)
                     : "a"(leaf), "c"(0));
    return r;
}

#define CPUID1_EDX_MSR  (1u << 5)
#define CPUID1_EDX_MTRR (1u << 12)

void msr_begin(void);
void msr_end(void);

/* rdmsr of index msr into *value; false (and *value 0) when it raised #GP. */
bool rdmsr_safe(uint32_t msr, uint64_t *value);

#endif
