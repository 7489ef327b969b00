/*
 * Dump mode (command line word "pvhcheck.fwdump"): print raw fw_cfg files and
 * the file directory instead of running the checks, for tests that replay them.
 */
#ifndef PVHCHECK_FWDUMP_H
#define PVHCHECK_FWDUMP_H

#include <stdbool.h>
#include <stdint.h>

#include "boot.h"

/* The hvm_start_info command line holds the word "pvhcheck.fwdump". */
bool fwdump_requested(const struct boot_view *bv);

/* Prints the "PVHCHECK fwdump..." lines; returns false if fw_cfg is absent. */
bool fwdump_run(void);

#endif
