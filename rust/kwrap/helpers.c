// SPDX-License-Identifier: GPL-2.0
/*
 * C half of zvpool.ko: thin, side-effect-free wrappers around kernel
 * `static inline` functions and cast macros that Rust's `kernel::bindings`
 * cannot see. Each is declared in rust/kwrap/ffi.rs; keep the two in sync
 * (struct zvpool_bdev_geom mirrors ffi::BdevGeom field for field).
 */
#include <linux/blkdev.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/utsname.h>

/* Geometry and capabilities of a block device, in 512-byte sectors. */
struct zvpool_bdev_geom {
	u64 nr_sectors;
	u64 zone_sectors;
	u32 nr_zones;
	u32 max_open_zones;
	u32 max_active_zones;
	u32 max_zone_append_sectors;
	u32 logical_block_size;
	u32 physical_block_size;
	u32 max_discard_sectors;
	u8 zoned;
	u8 write_cache;
	u8 fua;
	u8 read_only;
};

const char *zvpool_kernel_release(void);
u32 zvpool_blk_open_mode_rw_excl(void);
void zvpool_bdev_geometry(struct block_device *bdev, struct zvpool_bdev_geom *g);

/* The running kernel's release string, reported in configfs `features`. */
const char *zvpool_kernel_release(void)
{
	return init_utsname()->release;
}

/* BLK_OPEN_READ | BLK_OPEN_WRITE | BLK_OPEN_EXCL (cast macros, invisible to bindgen). */
u32 zvpool_blk_open_mode_rw_excl(void)
{
	return (__force u32)(BLK_OPEN_READ | BLK_OPEN_WRITE | BLK_OPEN_EXCL);
}

void zvpool_bdev_geometry(struct block_device *bdev, struct zvpool_bdev_geom *g)
{
	g->nr_sectors = bdev_nr_sectors(bdev);
	g->zoned = bdev_is_zoned(bdev);
	g->zone_sectors = g->zoned ? bdev_zone_sectors(bdev) : 0;
	g->nr_zones = g->zoned ? bdev_nr_zones(bdev) : 0;
	g->max_open_zones = bdev_max_open_zones(bdev);
	g->max_active_zones = bdev_max_active_zones(bdev);
	g->max_zone_append_sectors = g->zoned ? bdev_max_zone_append_sectors(bdev) : 0;
	g->logical_block_size = bdev_logical_block_size(bdev);
	g->physical_block_size = bdev_physical_block_size(bdev);
	g->max_discard_sectors = bdev_max_discard_sectors(bdev);
	g->write_cache = bdev_write_cache(bdev);
	g->fua = bdev_fua(bdev);
	g->read_only = bdev_read_only(bdev);
}

unsigned int zvpool_memalloc_noio_save(void);
void zvpool_memalloc_noio_restore(unsigned int flags);

/* Scoped GFP_NOIO (include/linux/sched/mm.h): allocations made by this task
 * until the matching restore do not start I/O to reclaim memory. */
unsigned int zvpool_memalloc_noio_save(void)
{
	return memalloc_noio_save();
}

void zvpool_memalloc_noio_restore(unsigned int flags)
{
	memalloc_noio_restore(flags);
}
