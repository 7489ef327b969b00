/*
 * SMBIOS as Linux 6.1 finds it (drivers/firmware/dmi_scan.c, no EFI): the
 * entry point in 0xf0000-0xfffff, the structure table it names, and the two
 * compared with what QEMU offers in fw_cfg (etc/smbios/smbios-anchor and
 * etc/smbios/smbios-tables).
 *
 *   PVHCHECK smbios ep=0x..|none anchor=_SM3_|_SM_|_DMI_ version=M.m table=0x.. length=N
 *                   count=N|- max_size=N|-
 *   PVHCHECK smbios struct <i> type=N handle=0x.. length=N size=N data=<hex> strings=<hex>,...
 *   PVHCHECK smbios types=<type>,<type>,...|-
 *   PVHCHECK smbios bios vendor=<hex>|- version=<hex>|- date=<hex>|-
 *   PVHCHECK smbios fwcfg anchor_size=N|none tables_size=N|none tables_crc32=0x..|none
 *                   table_crc32=0x..|none layout=whole|added|differs|none
 *
 * anchor=_DMI_: only the legacy DMI part was valid (Linux says "Legacy DMI").
 * length: the 2.1 structure table length or the 3.0 maximum size; count and
 * max_size are 2.1 fields ("-" for 3.0).  struct: every structure walked, its
 * formatted area (header included) and its strings, in hex.  bios: the type 0
 * strings at offsets 4, 5 and 8.  layout: the table in memory is QEMU's blob
 * as it is (whole), or one type 0 structure followed by QEMU's blob (added).
 */
#ifndef PVHCHECK_SMBIOS_H
#define PVHCHECK_SMBIOS_H

#include "fwcfg.h"

void smbios_report(const struct fwcfg_facts *fw);

/*
 * smbios_entry_point: what looks like an entry point is one Linux accepts.
 * smbios_structures: the table walks as Linux walks it and ends in type 127.
 * smbios_is_fwcfg: the table and entry point are QEMU's (layout, fields).
 * smbios_none_without_fwcfg: no entry point unless fw_cfg has both files.
 * smbios_not_in_ram: entry point and table lie outside the kernel's RAM.
 */
void smbios_checks(const struct fwcfg_facts *fw);

#endif
