// SPDX-License-Identifier: GPL-2.0
/*
 * C half of zvpool.ko: thin, side-effect-free wrappers around kernel
 * `static inline` functions and macros that Rust's `kernel::bindings` cannot
 * see. Each is declared in rust/kwrap/ffi.rs; keep the two in sync.
 */
#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/cpumask.h>
#include <linux/highmem.h>
#include <linux/kobject.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/utsname.h>
#include <linux/wait_bit.h>
#include <linux/workqueue.h>

const char *zvpool_kernel_release(void);

/* The running kernel's release string, reported in configfs `features`. */
const char *zvpool_kernel_release(void)
{
	return init_utsname()->release;
}

u64 zvpool_totalram_bytes(void);

/* The machine's memory, for defaults derived from it (table memory limit). */
u64 zvpool_totalram_bytes(void)
{
	return (u64)totalram_pages() << PAGE_SHIFT;
}

/* ---- requests (rust/kwrap/request.rs) ---- */

unsigned int zvpool_rq_op(struct request *rq);
u64 zvpool_rq_pos(struct request *rq);
unsigned int zvpool_rq_bytes(struct request *rq);
bool zvpool_rq_is_fua(struct request *rq);
bool zvpool_rq_is_preflush(struct request *rq);
int zvpool_rq_for_each_segment(struct request *rq,
			       int (*fn)(void *ctx, struct page *page,
					 unsigned int off, unsigned int len),
			       void *ctx);
void zvpool_memzero_page(struct page *page, size_t off, size_t len);

unsigned int zvpool_rq_op(struct request *rq)
{
	return req_op(rq);
}

u64 zvpool_rq_pos(struct request *rq)
{
	return blk_rq_pos(rq);
}

unsigned int zvpool_rq_bytes(struct request *rq)
{
	return blk_rq_bytes(rq);
}

bool zvpool_rq_is_fua(struct request *rq)
{
	return rq->cmd_flags & REQ_FUA;
}

bool zvpool_rq_is_preflush(struct request *rq)
{
	return rq->cmd_flags & REQ_PREFLUSH;
}

/*
 * Calls fn for every single-page segment of rq's data, in order; stops at
 * and returns the first non-zero return value of fn.
 */
int zvpool_rq_for_each_segment(struct request *rq,
			       int (*fn)(void *ctx, struct page *page,
					 unsigned int off, unsigned int len),
			       void *ctx)
{
	struct req_iterator iter;
	struct bio_vec bv;
	int ret;

	rq_for_each_segment(bv, rq, iter) {
		ret = fn(ctx, bv.bv_page, bv.bv_offset, bv.bv_len);
		if (ret)
			return ret;
	}
	return 0;
}

void zvpool_memzero_page(struct page *page, size_t off, size_t len)
{
	memzero_page(page, off, len);
}

/* ---- disks (rust/kwrap/disk.rs) ---- */

blk_features_t zvpool_blk_feat_write_cache(void);
blk_features_t zvpool_blk_feat_fua(void);
unsigned int zvpool_nr_cpu_ids(void);
const struct block_device_operations *zvpool_bdev_fops(void);
int zvpool_disk_claim(struct gendisk *disk);

blk_features_t zvpool_blk_feat_write_cache(void)
{
	return BLK_FEAT_WRITE_CACHE;
}

blk_features_t zvpool_blk_feat_fua(void)
{
	return BLK_FEAT_FUA;
}

unsigned int zvpool_nr_cpu_ids(void)
{
	return nr_cpu_ids;
}

/*
 * disk->private_data of every zvpool disk, owned by this file: set by
 * zvpool_disk_priv_alloc() before device_add_disk(), freed by
 * zvpool_disk_priv_free() after the disk's last put.
 * - claimed: false while the disk may be opened, true once
 *   zvpool_disk_claim() reserved it for removal. ->open runs with
 *   disk->open_mutex held, as does the claim, so an open either completes
 *   before the claim (which then sees the opener and fails) or fails after
 *   it.
 * - show(ops, i, buf): writes the value of identity attribute i (the
 *   ZVPOOL_IDENT_ATTR indices below, DiskAttr in rust/kwrap/disk.rs) into
 *   the page buf, returns its length or -errno. ops lives as long as the
 *   disk.
 */
struct zvpool_disk_priv {
	const void *ops;
	ssize_t (*show)(const void *ops, unsigned int attr, char *buf);
	bool claimed;
};

void *zvpool_disk_priv_alloc(const void *ops,
			     ssize_t (*show)(const void *ops, unsigned int attr, char *buf));
void zvpool_disk_priv_free(void *priv);
void zvpool_disk_set_priv(struct gendisk *disk, void *priv);
const struct attribute_group **zvpool_disk_attr_groups(void);
int zvpool_disk_announce(struct gendisk *disk);

static int zvpool_bdev_open(struct gendisk *disk, blk_mode_t mode)
{
	struct zvpool_disk_priv *p = disk->private_data;

	if (p->claimed)
		return -ENXIO;
	return 0;
}

static const struct block_device_operations zvpool_fops = {
	.owner = THIS_MODULE,
	.open = zvpool_bdev_open,
};

/* The block_device_operations of every zvpool disk. */
const struct block_device_operations *zvpool_bdev_fops(void)
{
	return &zvpool_fops;
}

/* A disk's private data (see struct zvpool_disk_priv); NULL without memory. Sleeps. */
void *zvpool_disk_priv_alloc(const void *ops,
			     ssize_t (*show)(const void *ops, unsigned int attr, char *buf))
{
	struct zvpool_disk_priv *p = kzalloc(sizeof(*p), GFP_KERNEL);

	if (p) {
		p->ops = ops;
		p->show = show;
	}
	return p;
}

void zvpool_disk_priv_free(void *priv)
{
	kfree(priv);
}

/* Before device_add_disk(): the disk's private data from zvpool_disk_priv_alloc(). */
void zvpool_disk_set_priv(struct gendisk *disk, void *priv)
{
	disk->private_data = priv;
}

/*
 * Reserves disk for removal: -EBUSY if anyone has it open, else 0 and
 * every later open fails with -ENXIO. Sleeps (disk->open_mutex).
 */
int zvpool_disk_claim(struct gendisk *disk)
{
	struct zvpool_disk_priv *p = disk->private_data;
	int ret = 0;

	mutex_lock(&disk->open_mutex);
	if (disk_openers(disk))
		ret = -EBUSY;
	else
		p->claimed = true;
	mutex_unlock(&disk->open_mutex);
	return ret;
}

/*
 * The identity attributes /sys/block/zvpoolN/zvpool/NAME and
 * /sys/block/zvpoolN/{serial,wwid} (read-only), all served by the disk's
 * show callback. They exist from device_add_disk()
 * to del_gendisk(), which waits for the shows in progress, so the private
 * data and ops outlive every show.
 */
static ssize_t zvpool_ident_show(struct device *dev, unsigned int i, char *buf)
{
	struct zvpool_disk_priv *p = dev_to_disk(dev)->private_data;

	return p->show(p->ops, i, buf);
}

#define ZVPOOL_IDENT_ATTR(_name, _i)						\
static ssize_t zvpool_ident_##_name##_show(struct device *dev,			\
					    struct device_attribute *attr,	\
					    char *buf)				\
{										\
	return zvpool_ident_show(dev, _i, buf);					\
}										\
static struct device_attribute zvpool_ident_attr_##_name =			\
	__ATTR(_name, 0444, zvpool_ident_##_name##_show, NULL)

ZVPOOL_IDENT_ATTR(pool, 0);
ZVPOOL_IDENT_ATTR(volume, 1);
ZVPOOL_IDENT_ATTR(uuid, 2);
ZVPOOL_IDENT_ATTR(kind, 3);
ZVPOOL_IDENT_ATTR(origin, 4);
ZVPOOL_IDENT_ATTR(pool_uuid, 5);
ZVPOOL_IDENT_ATTR(id, 6);
ZVPOOL_IDENT_ATTR(serial, 7);
ZVPOOL_IDENT_ATTR(wwid, 8);

static struct attribute *zvpool_ident_attrs[] = {
	&zvpool_ident_attr_pool.attr,
	&zvpool_ident_attr_volume.attr,
	&zvpool_ident_attr_uuid.attr,
	&zvpool_ident_attr_kind.attr,
	&zvpool_ident_attr_origin.attr,
	&zvpool_ident_attr_pool_uuid.attr,
	&zvpool_ident_attr_id.attr,
	NULL,
};

/* The uevent variable of each attribute, in the same order. */
static const char *const zvpool_ident_env[] = {
	"ZVPOOL_POOL", "ZVPOOL_VOLUME", "ZVPOOL_UUID", "ZVPOOL_KIND",
	"ZVPOOL_ORIGIN", "ZVPOOL_POOL_UUID", "ZVPOOL_VOLUME_ID",
};

static const struct attribute_group zvpool_ident_group = {
	.name = "zvpool",
	.attrs = zvpool_ident_attrs,
};

/*
 * /sys/block/zvpoolN/{serial,wwid}: where virtio-blk disks show their
 * serial and NVMe namespaces their WWID, for tools that look there.
 */
static struct attribute *zvpool_disk_id_attrs[] = {
	&zvpool_ident_attr_serial.attr,
	&zvpool_ident_attr_wwid.attr,
	NULL,
};

static const struct attribute_group zvpool_disk_id_group = {
	.attrs = zvpool_disk_id_attrs,
};

static const struct attribute_group *zvpool_disk_groups[] = {
	&zvpool_ident_group,
	&zvpool_disk_id_group,
	NULL,
};

/* The attribute groups every zvpool disk is added with (device_add_disk). */
const struct attribute_group **zvpool_disk_attr_groups(void)
{
	return zvpool_disk_groups;
}

/*
 * Sends the added disk's KOBJ_CHANGE uevent carrying its identity, as
 * loop and md do: ZVPOOL_POOL=... for every attribute with a non-empty
 * value (one trailing newline dropped). Returns 0 or -errno. Sleeps.
 */
int zvpool_disk_announce(struct gendisk *disk)
{
	struct zvpool_disk_priv *p = disk->private_data;
	char *envp[ARRAY_SIZE(zvpool_ident_env) + 1] = {};
	unsigned int i, n = 0;
	char *buf;
	int ret = 0;

	buf = kzalloc(PAGE_SIZE, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	for (i = 0; i < ARRAY_SIZE(zvpool_ident_env); i++) {
		ssize_t len = p->show(p->ops, i, buf);

		if (len < 0) {
			ret = len;
			goto out;
		}
		if (len > 0 && buf[len - 1] == '\n')
			len--;
		if (!len)
			continue;
		envp[n] = kasprintf(GFP_KERNEL, "%s=%.*s", zvpool_ident_env[i], (int)len, buf);
		if (!envp[n]) {
			ret = -ENOMEM;
			goto out;
		}
		n++;
	}
	ret = kobject_uevent_env(&disk_to_dev(disk)->kobj, KOBJ_CHANGE, envp);
out:
	for (i = 0; i < n; i++)
		kfree(envp[i]);
	kfree(buf);
	return ret;
}

/* ---- the task's plug (rust/kwrap/tagset.rs) ---- */

struct blk_plug *zvpool_plug_detach(void);
void zvpool_plug_attach(struct blk_plug *plug);

/*
 * Takes the current task's plug away (it may be the one being flushed).
 * The plug's cached time is invalidated first: the scheduler resets it
 * through current->plug whenever PF_BLOCK_TS is set.
 */
struct blk_plug *zvpool_plug_detach(void)
{
	struct blk_plug *plug = current->plug;

	if (plug)
		blk_plug_invalidate_ts();
	current->plug = NULL;
	return plug;
}

/* Gives the task back the plug `zvpool_plug_detach` took. */
void zvpool_plug_attach(struct blk_plug *plug)
{
	current->plug = plug;
}

/* ---- waiting for a counter to reach zero (rust/kwrap/varwait.rs) ---- */

void zvpool_wait_var_zero(atomic_t *v);
void zvpool_wake_var(atomic_t *v);
void zvpool_wait_var_change(atomic_t *v, int old, unsigned int ms);

/* Sleeps (uninterruptibly) until *v is zero. */
void zvpool_wait_var_zero(atomic_t *v)
{
	wait_var_event(v, !atomic_read(v));
}

/* Sleeps (uninterruptibly) until *v differs from old, or for ms at most. */
void zvpool_wait_var_change(atomic_t *v, int old, unsigned int ms)
{
	wait_var_event_timeout(v, atomic_read(v) != old, msecs_to_jiffies(ms));
}

/* Wakes the waiters of *v (any context; after the change, with a full
 * barrier between the change and this call). */
void zvpool_wake_var(atomic_t *v)
{
	wake_up_var(v);
}

/* ---- allocation scope (rust/kwrap/noio.rs) ---- */

unsigned int zvpool_memalloc_noio_save(void);
void zvpool_memalloc_noio_restore(unsigned int flags);

unsigned int zvpool_memalloc_noio_save(void)
{
	return memalloc_noio_save();
}

void zvpool_memalloc_noio_restore(unsigned int flags)
{
	memalloc_noio_restore(flags);
}

/* ---- lower devices (rust/kwrap/bdev.rs) ---- */

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

u32 zvpool_blk_open_mode_rw_excl(void);
void zvpool_bdev_geometry(struct block_device *bdev, struct zvpool_bdev_geom *g);

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

/* ---- request work items (rust/kwrap/tagset.rs) ---- */

struct workqueue_struct *zvpool_alloc_io_workqueue(void);
void zvpool_init_work(struct work_struct *work, work_func_t fn);
bool zvpool_queue_work(struct workqueue_struct *wq, struct work_struct *work);

/*
 * The workqueue a disk serves its requests on: unbound (work items block on
 * lower I/O), WQ_MEM_RECLAIM because it is on the writeback path (it has a
 * rescuer, so it makes progress under memory pressure), WQ_HIGHPRI for I/O
 * latency.
 */
struct workqueue_struct *zvpool_alloc_io_workqueue(void)
{
	return alloc_workqueue("zvpool_io", WQ_UNBOUND | WQ_MEM_RECLAIM | WQ_HIGHPRI, 0);
}

void zvpool_init_work(struct work_struct *work, work_func_t fn)
{
	INIT_WORK(work, fn);
}

bool zvpool_queue_work(struct workqueue_struct *wq, struct work_struct *work)
{
	return queue_work(wq, work);
}

/* ---- queue limits to stack (rust/kwrap/bdev.rs, disk.rs) ---- */

/* The I/O-shape limits a stacking device must not exceed. */
struct zvpool_io_limits {
	u64 virt_boundary_mask;
	u64 seg_boundary_mask;
	u32 max_sectors;
	u32 max_zone_append_sectors;
	u32 max_segment_size;
	u32 dma_alignment;
	u16 max_segments;
};

void zvpool_bdev_io_limits(struct block_device *bdev, struct zvpool_io_limits *l);
void zvpool_apply_io_limits(struct queue_limits *lim, const struct zvpool_io_limits *l);

void zvpool_bdev_io_limits(struct block_device *bdev, struct zvpool_io_limits *l)
{
	const struct queue_limits *b = &bdev_get_queue(bdev)->limits;

	l->virt_boundary_mask = b->virt_boundary_mask;
	l->seg_boundary_mask = b->seg_boundary_mask;
	l->max_sectors = b->max_sectors;
	l->max_zone_append_sectors = bdev_is_zoned(bdev) ? b->max_zone_append_sectors : 0;
	l->max_segment_size = b->max_segment_size;
	l->dma_alignment = b->dma_alignment;
	l->max_segments = b->max_segments;
}

/* Copies the stacked limits l into lim (0 = leave the block layer's default). */
void zvpool_apply_io_limits(struct queue_limits *lim, const struct zvpool_io_limits *l)
{
	lim->virt_boundary_mask = l->virt_boundary_mask;
	lim->seg_boundary_mask = l->seg_boundary_mask;
	lim->max_segment_size = l->max_segment_size;
	lim->dma_alignment = l->dma_alignment;
	lim->max_segments = l->max_segments;
}


/* ---- lower bios (rust/kwrap/bio.rs) ---- */

gfp_t zvpool_gfp_noio(void);

/* GFP_NOIO (a macro of casts, invisible to bindgen). */
gfp_t zvpool_gfp_noio(void)
{
	return GFP_NOIO;
}

void zvpool_bio_charge_like(struct bio *dst, struct request *rq);

/*
 * Charges lower bio `dst` to the blkcg of request `rq`'s first bio (the
 * task that submitted the volume I/O), not to the task that builds `dst`
 * (a worker, or the root group): io.max / io.weight set on a member then
 * act per VM. A no-op without CONFIG_BLK_CGROUP.
 */
void zvpool_bio_charge_like(struct bio *dst, struct request *rq)
{
	if (rq->bio)
		bio_clone_blkg_association(dst, rq->bio);
}

/*
 * Adds len bytes of the directly mapped (kmalloc'ed) buffer buf to bio,
 * page by page; returns the bytes added (less than len if the bio is full).
 */
unsigned int zvpool_bio_add_kbuf(struct bio *bio, void *buf, unsigned int len);

unsigned int zvpool_bio_add_kbuf(struct bio *bio, void *buf, unsigned int len)
{
	unsigned int done = 0;

	while (done < len) {
		void *p = buf + done;
		unsigned int off = offset_in_page(p);
		unsigned int n = min_t(unsigned int, len - done, PAGE_SIZE - off);

		if (bio_add_page(bio, virt_to_page(p), n, off) != n)
			break;
		done += n;
	}
	return done;
}

/* ---- background work (rust/kwrap/workq.rs) ---- */

struct workqueue_struct *zvpool_alloc_reclaim_workqueue(const char *name);

/*
 * A workqueue for work on the writeback path (GC): unbound, WQ_MEM_RECLAIM
 * (its rescuer guarantees progress under memory pressure), one item at a
 * time.
 */
struct workqueue_struct *zvpool_alloc_reclaim_workqueue(const char *name)
{
	return alloc_workqueue("%s", WQ_UNBOUND | WQ_MEM_RECLAIM, 1, name);
}
