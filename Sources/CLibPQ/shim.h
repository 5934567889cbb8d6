#ifndef LEASEHOLD_CLIBPQ_SHIM_H
#define LEASEHOLD_CLIBPQ_SHIM_H

#include <libpq-fe.h>

/* Field codes are macros in postgres_ext.h; expose them as values Swift can import. */
static inline int lh_pg_diag_sqlstate(void) { return PG_DIAG_SQLSTATE; }
static inline int lh_pg_diag_severity(void) { return PG_DIAG_SEVERITY_NONLOCALIZED; }
static inline int lh_pg_diag_message_primary(void) { return PG_DIAG_MESSAGE_PRIMARY; }
static inline int lh_pg_diag_message_detail(void) { return PG_DIAG_MESSAGE_DETAIL; }
static inline int lh_pg_diag_message_hint(void) { return PG_DIAG_MESSAGE_HINT; }
static inline int lh_pg_diag_constraint_name(void) { return PG_DIAG_CONSTRAINT_NAME; }
static inline int lh_pg_diag_table_name(void) { return PG_DIAG_TABLE_NAME; }

/* A notice processor that drops notices (they otherwise go to stderr). */
static void lh_pg_silent_notice(void *arg, const char *message) { (void)arg; (void)message; }
static inline void lh_pg_silence_notices(PGconn *conn) { PQsetNoticeProcessor(conn, lh_pg_silent_notice, 0); }

/*
 * OpenSSL's SSL_pending, declared here rather than by including <openssl/ssl.h>: libpq hands out
 * its SSL object only as an untyped pointer (PQsslStruct). The module map links libssl, which
 * Debian's libpq-dev brings (libssl-dev) and libpq5 needs anyway (libssl3).
 */
struct ssl_st;
extern int SSL_pending(const struct ssl_st *ssl);

/*
 * How many decrypted bytes OpenSSL holds for conn that libpq has not taken yet: bytes already
 * read from the socket, which polling the socket cannot see. 0 without TLS, and once libpq has
 * dropped the connection (it frees its SSL object then, so the pointer is fetched on every call).
 * libpq's own blocking waits make the same check before they poll.
 */
static inline int lh_pg_tls_pending(PGconn *conn) {
    const struct ssl_st *ssl = (const struct ssl_st *)PQsslStruct(conn, "OpenSSL");
    return ssl ? SSL_pending(ssl) : 0;
}

#endif
