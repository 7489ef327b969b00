/* QEMU fw_cfg through its I/O port interface (selector 0x510, data 0x511). */
#ifndef PVHCHECK_FWCFG_H
#define PVHCHECK_FWCFG_H

#include <stdbool.h>
#include <stdint.h>

#define FW_CFG_SIGNATURE    0x00
#define FW_CFG_ID           0x01
#define FW_CFG_NB_CPUS      0x05   /* u16: CPUs at boot */
#define FW_CFG_KERNEL_ADDR  0x07
#define FW_CFG_KERNEL_SIZE  0x08
#define FW_CFG_INITRD_ADDR  0x0a
#define FW_CFG_INITRD_SIZE  0x0b
#define FW_CFG_KERNEL_ENTRY 0x10
#define FW_CFG_KERNEL_DATA  0x11
#define FW_CFG_CMDLINE_SIZE 0x14
#define FW_CFG_CMDLINE_DATA 0x15
#define FW_CFG_SETUP_ADDR   0x16   /* bzImage: the setup sectors, header as QEMU edited it */
#define FW_CFG_SETUP_SIZE   0x17
#define FW_CFG_SETUP_DATA   0x18
#define FW_CFG_MAX_CPUS     0x0f   /* u16: the APIC ID limit */
#define FW_CFG_FILE_DIR     0x19
#define FW_CFG_IRQ0_OVERRIDE 0x8002  /* u32: nonzero when ISA IRQ 0 arrives on IOAPIC pin 2 */

#define FWCFG_MAX_E820 32
#define FWCFG_MAX_FILES 4096   /* a larger directory count is treated as garbage */
#define FWCFG_NAME_LEN 56      /* FWCfgFile.name, NUL-terminated by QEMU */

/* One entry of the file directory (item 0x19), converted from big-endian. */
struct fwcfg_file {
    uint32_t size;
    uint16_t select;
    char name[FWCFG_NAME_LEN + 1];
};

struct fwcfg_e820_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};

/* Everything the checks need from fw_cfg, read once. */
struct fwcfg_facts {
    bool present;                 /* signature item reads "QEMU" */
    uint32_t id;
    uint32_t kernel_entry, kernel_addr, kernel_size;
    uint32_t initrd_addr, initrd_size;
    uint32_t cmdline_size;
    uint32_t setup_addr, setup_size;  /* 0 unless QEMU loaded a bzImage */
    bool have_e820;               /* file "etc/e820" exists */
    bool have_acpi_rsdp;          /* file "etc/acpi/rsdp" exists: QEMU built ACPI tables */
    uint32_t e820_count;          /* entries in the file (may exceed the array) */
    struct fwcfg_e820_entry e820[FWCFG_MAX_E820];
    uint32_t nb_cpus, max_cpus;   /* FW_CFG_NB_CPUS, FW_CFG_MAX_CPUS (16-bit items) */
    uint32_t irq0_override;       /* FW_CFG_IRQ0_OVERRIDE */
    /* etc/smbios/smbios-anchor and etc/smbios/smbios-tables (pc, q35; not microvm) */
    bool have_smbios_anchor, have_smbios_tables;
    uint16_t smbios_anchor_select, smbios_tables_select;
    uint32_t smbios_anchor_size, smbios_tables_size;
};

void fwcfg_read_facts(struct fwcfg_facts *f);

/* The signature item reads "QEMU". */
bool fwcfg_signature_ok(void);

/* Select item (or file selector) key, which rewinds it, and read its first len bytes. */
void fwcfg_read_item(uint16_t key, void *buf, uint32_t len);

/*
 * Compare the first len bytes of item key with mem, streaming (no buffer):
 * returns the offset of the first difference, or len when they are equal.
 * The caller makes sure the item has len bytes (QEMU reads 0 past the end).
 */
uint32_t fwcfg_item_compare(uint16_t key, const uint8_t *mem, uint32_t len);

/* zlib.crc32 of the first len bytes of item key, streamed (no buffer). */
uint32_t fwcfg_item_crc32(uint16_t key, uint32_t len);

/*
 * Walk the file directory: fwcfg_dir_open selects it and returns the entry
 * count (at most FWCFG_MAX_FILES); each fwcfg_dir_next reads the next entry.
 * Nothing else may select an item in between.
 */
uint32_t fwcfg_dir_open(void);
void fwcfg_dir_next(struct fwcfg_file *f);

/* Look a file up in the directory; true if found. */
bool fwcfg_find_file(const char *name, uint16_t *select, uint32_t *size);

#endif
