#ifndef PVHCHECK_CRC32_H
#define PVHCHECK_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32/IEEE (reflected, poly 0xedb88320), the same value as Python's zlib.crc32. */
uint32_t crc32(const uint8_t *p, size_t n);

#endif
