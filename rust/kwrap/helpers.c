// SPDX-License-Identifier: GPL-2.0
/*
 * C half of zvpool.ko: thin, side-effect-free wrappers around kernel
 * `static inline` functions and macros that Rust's `kernel::bindings` cannot
 * see. Each is declared in rust/kwrap/ffi.rs; keep the two in sync.
 */
#include <linux/module.h>
#include <linux/utsname.h>

const char *zvpool_kernel_release(void);

/* The running kernel's release string, reported in configfs `features`. */
const char *zvpool_kernel_release(void)
{
	return init_utsname()->release;
}
