#ifndef LEASEHOLD_CHIREDIS_SHIM_H
#define LEASEHOLD_CHIREDIS_SHIM_H

#include <hiredis/hiredis.h>
#include <sys/time.h>

/* redisContext.errstr is a char[128]; Swift imports it as a tuple, so read it through a pointer. */
static inline const char *lh_redis_errstr(const redisContext *c) { return c->errstr; }
static inline int lh_redis_err(const redisContext *c) { return c->err; }
static inline int lh_redis_fd(const redisContext *c) { return c->fd; }

/* Reply type tags are macros. */
static inline int lh_redis_reply_string(void) { return REDIS_REPLY_STRING; }
static inline int lh_redis_reply_array(void) { return REDIS_REPLY_ARRAY; }
static inline int lh_redis_reply_integer(void) { return REDIS_REPLY_INTEGER; }
static inline int lh_redis_reply_nil(void) { return REDIS_REPLY_NIL; }
static inline int lh_redis_reply_status(void) { return REDIS_REPLY_STATUS; }
static inline int lh_redis_reply_error(void) { return REDIS_REPLY_ERROR; }
static inline int lh_redis_ok(void) { return REDIS_OK; }

static inline struct timeval lh_timeval_ms(long long ms) {
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

#endif
