/* ssl_floor: what OpenSSL itself costs per connection, configured the way edgecert configures it
 * (src/tls/tls_context.cpp): TLS 1.2-1.3, X25519/P-256/P-384, the certificate set in the
 * ClientHello callback with SSL_use_cert_and_key, stateless tickets through a key callback,
 * SSL_MODE_RELEASE_BUFFERS. No event loop, no proxying: the floor under any terminator on this
 * libssl.
 *   hs   CERT KEY N [TICKETS]  server CPU per full handshake (client and server in one thread,
 *                              a BIO pair between them; only the server's calls are timed)
 *   resume CERT KEY N [TICKETS] the same for a TLS 1.3 resumed handshake (PSK from a ticket of
 *                              our key callback, with X25519 as OpenSSL's client offers it:
 *                              psk_dhe_ke), the server issuing a fresh ticket as it does after
 *                              every resumption; every handshake is checked to have resumed
 *   idle CERT KEY N [TICKETS]  heap bytes per server SSL kept after its handshake (mallinfo2)
 * build: cc -O2 -o ssl_floor bench/tls/ssl_floor.c -lssl -lcrypto
 * Results and how they are used: bench/tls/RESULTS.md ("Where the time and the memory go"). */
#include <fcntl.h>
#include <malloc.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static X509* leaf;
static EVP_PKEY* key;
static STACK_OF(X509) * chain;
static EVP_CIPHER* aes;
static unsigned char tk_aes[32], tk_hmac[32];

static double tcpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static void die(const char* m) {
    fprintf(stderr, "ssl_floor: %s\n", m);
    ERR_print_errors_fp(stderr);
    exit(1);
}
static int hello_cb(SSL* s, int* al, void* arg) {
    (void)al, (void)arg;
    return SSL_use_cert_and_key(s, leaf, key, chain, 1) == 1 ? SSL_CLIENT_HELLO_SUCCESS
                                                             : SSL_CLIENT_HELLO_ERROR;
}
static int ticket_cb(SSL* s, unsigned char name[16], unsigned char iv[16], EVP_CIPHER_CTX* c,
                     EVP_MAC_CTX* h, int enc) {
    (void)s;
    OSSL_PARAM p[3];
    p[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, tk_hmac, sizeof tk_hmac);
    p[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
    p[2] = OSSL_PARAM_construct_end();
    if (!enc) { /* decrypt: one key, named 0x01.. (edgecert looks the name up among its keys) */
        static const unsigned char ours[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
        if (memcmp(name, ours, 16) != 0) return 0;
        return EVP_DecryptInit_ex(c, aes, NULL, tk_aes, iv) == 1 &&
                       EVP_MAC_CTX_set_params(h, p) == 1
                   ? 1
                   : 0;
    }
    memset(name, 1, 16);
    if (RAND_bytes(iv, 16) != 1 || EVP_EncryptInit_ex(c, aes, NULL, tk_aes, iv) != 1 ||
        EVP_MAC_CTX_set_params(h, p) != 1)
        return -1;
    return 1;
}
/* one step; 1 when the handshake is done */
static int step(SSL* s) {
    int r = SSL_do_handshake(s);
    if (r == 1) return 1;
    int e = SSL_get_error(s, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) die("handshake");
    return 0;
}

int main(int argc, char** argv) {
    if (argc < 5 ||
        (strcmp(argv[1], "hs") && strcmp(argv[1], "idle") && strcmp(argv[1], "resume"))) {
        fprintf(stderr, "usage: %s hs|resume|idle CERT KEY N [TICKETS]\n", argv[0]);
        return 2;
    }
    int idle = !strcmp(argv[1], "idle"), resume = !strcmp(argv[1], "resume"), n = atoi(argv[4]);
    int tickets = argc > 5 ? atoi(argv[5]) : 1;
    if (resume && tickets < 1) die("resume needs at least one ticket");
    FILE* f = fopen(argv[2], "r");
    if (!f || !(leaf = PEM_read_X509(f, NULL, NULL, NULL))) die("certificate");
    chain = sk_X509_new_null();
    for (X509* x; (x = PEM_read_X509(f, NULL, NULL, NULL));) sk_X509_push(chain, x);
    fclose(f);
    ERR_clear_error();
    if (!(f = fopen(argv[3], "r")) || !(key = PEM_read_PrivateKey(f, NULL, NULL, NULL))) die("key");
    fclose(f);
    aes = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    RAND_bytes(tk_aes, sizeof tk_aes);
    RAND_bytes(tk_hmac, sizeof tk_hmac);

    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
    if (!sctx || !cctx) die("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(sctx, TLS1_2_VERSION);
    SSL_CTX_set1_groups_list(sctx, "X25519:P-256:P-384");
    SSL_CTX_set_mode(sctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(sctx, (size_t)tickets);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(sctx, ticket_cb);
    SSL_CTX_set_client_hello_cb(sctx, hello_cb, NULL);

    SSL** kept = idle ? calloc((size_t)n, sizeof *kept) : NULL;
    double server_cpu = 0;
    SSL_SESSION* sess = NULL; /* resume: the ticket of the first (untimed) full handshake */
    struct mallinfo2 m0 = mallinfo2();
    for (int i = resume ? -1 : 0; i < n; i++) {
        /* hs: a BIO pair (no kernel in the figure); idle: a socketpair (no BIO-pair buffers in it)
         */
        int sv[2] = {-1, -1};
        BIO *bs = NULL, *bc = NULL;
        if (idle) {
            if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die("socketpair (raise ulimit -n)");
            fcntl(sv[0], F_SETFL, O_NONBLOCK);
            fcntl(sv[1], F_SETFL, O_NONBLOCK);
        } else if (BIO_new_bio_pair(&bs, 0, &bc, 0) != 1) {
            die("BIO pair");
        }
        double a = tcpu();
        SSL* s = SSL_new(sctx);
        if (idle)
            SSL_set_fd(s, sv[0]);
        else
            SSL_set_bio(s, bs, bs);
        SSL_set_accept_state(s);
        server_cpu += tcpu() - a;
        SSL* c = SSL_new(cctx);
        if (idle)
            SSL_set_fd(c, sv[1]);
        else
            SSL_set_bio(c, bc, bc);
        SSL_set_connect_state(c);
        if (sess && SSL_set_session(c, sess) != 1) die("SSL_set_session");
        for (int cd = 0, sd = 0, guard = 0; !(cd && sd); guard++) {
            if (guard > 100) die("handshake does not converge");
            if (!cd) cd = step(c);
            double t = tcpu();
            if (!sd) sd = step(s);
            server_cpu += tcpu() - t;
        }
        char b;
        SSL_read(
            c, &b,
            resume ? 1 : 0); /* takes the tickets (a 0-byte read does not: resume needs them) */
        SSL_read(s, &b, 1);  /* the server waits for data, as an idle connection does */
        ERR_clear_error();
        if (resume && i < 0) {
            if (!(sess = SSL_get1_session(c)) || !SSL_SESSION_has_ticket(sess))
                die("no ticket to resume with");
            server_cpu = 0; /* the full handshake that got the ticket is not counted */
        } else if (resume && !SSL_session_reused(s)) {
            die("handshake did not resume");
        }
        /* An SSL freed without a shutdown marks its session not resumable (as s_time avoids, too).
         */
        if (resume) SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(c);
        if (idle) close(sv[1]);
        if (idle) {
            kept[i] = s;
        } else {
            double t = tcpu();
            SSL_free(s);
            server_cpu += tcpu() - t;
        }
    }
    if (idle) {
        struct mallinfo2 m1 = mallinfo2();
        printf("idle: %d server connections, %.0f heap bytes each (tickets=%d)\n", n,
               (double)(m1.uordblks - m0.uordblks) / n, tickets);
    } else {
        printf("%s: %d %s handshakes, server %.1f us each = %.0f per CPU-second (tickets=%d)\n",
               argv[1], n, resume ? "resumed (TLS 1.3 PSK)" : "full", server_cpu / n * 1e6,
               n / server_cpu, tickets);
    }
    return 0;
}
