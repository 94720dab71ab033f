/*
 * datacmd.c - `holdfast recover` and `holdfast backup`: the data directory's
 * own commands, run without serving.
 */
#include <stdio.h>
#include <string.h>

#include "server.h"

static void print_recovery(const char *dir, const store_recovery_t *info)
{
    printf("data directory: %s\n", dir);
    printf("readable: up to record %llu (a snapshot of %llu records, then %llu journal "
           "records)\n",
           (unsigned long long)info->last_seq, (unsigned long long)info->snapshot_records,
           (unsigned long long)info->journal_records);
    if (info->marked_seq > 0) {
        printf("durable by holdfast.mark: up to record %llu\n",
               (unsigned long long)info->marked_seq);
    }
}

/* Says what would be lost: the records between the last good one and the
 * mark, when the mark is ahead; otherwise what cannot be counted. */
static void print_loss(const store_recovery_t *info)
{
    printf("damage: %s\n", info->damage);
    if (info->marked_seq > info->last_seq) {
        printf("lost: records %llu-%llu (%llu durable records)\n",
               (unsigned long long)(info->last_seq + 1), (unsigned long long)info->marked_seq,
               (unsigned long long)(info->marked_seq - info->last_seq));
    } else {
        printf("lost: everything after record %llu that the journal held; how much is not "
               "known (the mark lags by up to a second)\n",
               (unsigned long long)info->last_seq);
    }
}

int server_recover_cmd(const server_config_t *c, bool accept_loss)
{
    char err[512];
    store_t s;
    store_recovery_t info;
    guard_t *g = guard_create(&c->guard, 0);
    if (g == NULL) {
        fprintf(stderr, "holdfast recover: cannot reserve the tables\n");
        return 1;
    }
    int rc = store_open(&s, c->data_dir, STORE_DURABLE, 0, err, sizeof err);
    if (rc == 0) {
        rc = store_recover_readable(&s, g, 0, &info, err, sizeof err);
        store_close(&s);
    }
    if (rc != 0) {
        fprintf(stderr, "holdfast recover: %s\n", err);
        guard_destroy(g);
        return 1;
    }
    print_recovery(c->data_dir, &info);
    if (info.damage[0] == '\0') {
        printf("the journal is whole: nothing to recover\n");
        guard_destroy(g);
        return 0;
    }
    print_loss(&info);
    if (!accept_loss) {
        printf("nothing was changed; to start from record %llu: holdfast recover --data %s "
               "--accept-loss\n",
               (unsigned long long)info.last_seq, c->data_dir);
        guard_destroy(g);
        return 3;
    }
    char moved[4096];
    rc = store_rebuild(c->data_dir, g, &info, moved, sizeof moved, err, sizeof err);
    guard_destroy(g);
    if (rc != 0) {
        fprintf(stderr, "holdfast recover: %s\n", err);
        return 1;
    }
    printf("rebuilt from record %llu; the damaged files are in %s\n",
           (unsigned long long)info.last_seq, moved);
    return 0;
}

int server_backup_cmd(const char *dir, const char *out)
{
    char err[512];
    store_backup_t info;
    if (store_backup(dir, out, &info, err, sizeof err) != 0) {
        fprintf(stderr, "holdfast backup: %s\n", err);
        return 1;
    }
    printf("backup of %s in %s: every record up to %llu (snapshot %llu and %llu journal rows), "
           "%llu bytes, %lld ms\n",
           dir, out, (unsigned long long)info.seq, (unsigned long long)info.snapshot_seq,
           (unsigned long long)info.rows, (unsigned long long)info.bytes,
           (long long)info.duration_ms);
    return 0;
}
