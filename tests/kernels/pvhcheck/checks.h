#ifndef PVHCHECK_CHECKS_H
#define PVHCHECK_CHECKS_H

#include <stdint.h>

#include "boot.h"
#include "fwcfg.h"

/* Runs every check, prints "PVHCHECK check <name> ok|FAIL <detail>", returns the failures. */
uint32_t run_checks(const struct boot_view *bv, const struct fwcfg_facts *fw);

#endif
