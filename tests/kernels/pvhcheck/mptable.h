/*
 * The Intel MP table (MultiProcessor Specification 1.4) as Linux 6.1 finds
 * it (arch/x86/kernel/mpparse.c default_find_smp_config): a "_MP_" floating
 * pointer in [0, 0x400), [0x9fc00, 0xa0000), [0xf0000, 0x100000), then in
 * the first KiB of the EBDA named by the BDA word at 0x40e.
 *
 *   PVHCHECK mptable fp=0x..|none table=0x..|none spec=N feature1=0x.. feature2=0x..
 *                    length=N entries=N walked=N lapic=0x.. oem=<hex> product=<hex>
 *                    cpus=N ioapic=<id>@0x<addr>|none isa_irqs=<irq>,...|-
 *   PVHCHECK mptable cpu <i> apic=N version=0x.. flags=0x.. signature=0x.. features=0x..
 *   PVHCHECK mptable bus <i> id=N type=<hex of the 6 characters>
 *   PVHCHECK mptable ioapic <i> id=N version=0x.. flags=0x.. addr=0x..
 *   PVHCHECK mptable intsrc <i> irqtype=N flags=0x.. bus=N irq=N dst=N pin=N
 *   PVHCHECK mptable lintsrc <i> irqtype=N flags=0x.. bus=N irq=N dst=N pin=N
 *
 * spec is the floating pointer's; entries the config header's entry count,
 * walked the entries found within its base length; cpus the enabled
 * processors; isa_irqs the ISA bus IRQs with an I/O interrupt entry.  <i> is
 * the entry's index in the table.
 */
#ifndef PVHCHECK_MPTABLE_H
#define PVHCHECK_MPTABLE_H

#include "fwcfg.h"

void mptable_report(void);

/*
 * mptable_floating: what looks like a floating pointer is one Linux accepts,
 *     and it points at a configuration table (feature1 0).
 * mptable_config: "PCMP", checksum, spec 1 or 4, a local APIC address, entries
 *     of known types that fill the base length exactly.
 * mptable_cpus: distinct APIC IDs, one bootstrap processor (this CPU), as many
 *     enabled processors as fw_cfg's FW_CFG_NB_CPUS.
 * mptable_ioapic: an I/O APIC at 0xfec00000 that every I/O interrupt entry targets.
 * mptable_isa_irqs: an ISA bus whose IRQs reach their own IOAPIC pins (IRQ 0 pin 2
 *     and no IRQ 2 with fw_cfg's irq0 override); every ISA IRQ but 5, 9, 10 and 11,
 *     which a firmware may route through PCI entries instead (SeaBIOS does).
 * mptable_lint: ExtINT on LINT0 and NMI on LINT1.
 */
void mptable_checks(const struct fwcfg_facts *fw);

#endif
