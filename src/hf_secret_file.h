/*
 * hf_secret_file.h - the one rule for a file that holds a secret (the shop
 * keys, the admin key, the webhook signing secret), for every layer that
 * reads one: a regular file that only its owner may use (mode 600 or 400),
 * smaller than the reader's buffer, read whole. A secret others may read is
 * a secret others have, so such a file is refused, never used.
 */
#ifndef HF_SECRET_FILE_H
#define HF_SECRET_FILE_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Why the open file fd may not be used, or NULL. too_large: the reason
 * given for a file of size bytes or more. */
static inline const char *hf_secret_file_refusal(int fd, size_t size, const char *too_large,
                                                 char *why, size_t why_size)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return strerror(errno);
    }
    if (!S_ISREG(st.st_mode)) {
        return "not a regular file";
    }
    if ((st.st_mode & 077) != 0) {
        snprintf(why, why_size, "group or others may use it (mode %04o): chmod 600 it, or 400",
                 (unsigned)(st.st_mode & 07777));
        return why;
    }
    return (size_t)st.st_size >= size ? too_large : NULL;
}

/* Reads the secret file at path into buf (size > 1 bytes, NUL-terminated)
 * and sets *len_out. Returns NULL, or why it was not read: errno's text
 * (*open_errno is then errno if it could not be opened, else 0) or the rule
 * it breaks, in why when it needs words of its own. */
static inline const char *hf_secret_file_read(const char *path, char *buf, size_t size,
                                              const char *too_large, size_t *len_out,
                                              int *open_errno, char *why, size_t why_size)
{
    *len_out = 0;
    *open_errno = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        *open_errno = errno;
        return strerror(errno);
    }
    const char *refused = hf_secret_file_refusal(fd, size, too_large, why, why_size);
    size_t got = 0;
    while (refused == NULL && got < size - 1) {
        ssize_t n = read(fd, buf + got, size - 1 - got);
        if (n < 0 && errno != EINTR) {
            refused = strerror(errno);
        } else if (n == 0) {
            break;
        } else if (n > 0) {
            got += (size_t)n;
        }
    }
    close(fd);
    buf[got] = '\0';
    *len_out = refused == NULL ? got : 0;
    return refused;
}

#endif
