/* lockcount: an LD_PRELOAD library that counts pthread mutex and rwlock acquisitions per lock and
 * per thread while a file exists, to show which locks a process takes on its handshake path and
 * which of them several threads share (bench/tls/lock-profile.sh runs it on edgecert's workers).
 *   LOCKCOUNT_ARM=/path   count while this file exists; when it is removed, write the table
 *   LOCKCOUNT_OUT=/path   where the table goes (appended; default stderr)
 * For each lock: acquisitions by each thread (numbered in order of their first lock while
 * armed), the kind (m mutex, r read, w write) and the first caller outside libpthread/libc and
 * this library (dladdr: library!symbol+offset), from a backtrace taken the first time it is seen.
 * Atomic operations (reference counts, OpenSSL's lock-free paths) are not locks and not counted.
 * build: cc -O2 -shared -fPIC -o lockcount.so bench/tls/lockcount.c -ldl -lpthread */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 16384 /* power of two */
#define THREADS 16
#define FRAMES 16

struct entry {
    _Atomic uintptr_t addr;
    char kind;
    _Atomic unsigned long n[THREADS];
    void* bt[FRAMES];
    _Atomic int nbt; /* 0 none yet, -1 being taken, else frames */
};
static struct entry tab[SLOTS];
static atomic_int armed, next_tid, overflow;
static __thread int tid = -1, inside;
static int (*real_mutex_lock)(pthread_mutex_t*);
static int (*real_rdlock)(pthread_rwlock_t*);
static int (*real_wrlock)(pthread_rwlock_t*);

static void note(void* lock, char kind) {
    if (!atomic_load_explicit(&armed, memory_order_relaxed) || inside) return;
    inside = 1;
    if (tid < 0) tid = atomic_fetch_add(&next_tid, 1);
    uintptr_t a = (uintptr_t)lock;
    size_t h = (size_t)(((uint64_t)a >> 3) * 0x9E3779B97F4A7C15ull >> 50);
    for (size_t i = 0; i < SLOTS; i++) {
        struct entry* e = &tab[(h + i) & (SLOTS - 1)];
        uintptr_t cur = atomic_load(&e->addr);
        if (cur == 0 && atomic_compare_exchange_strong(&e->addr, &cur, a)) {
            e->kind = kind;
            cur = a;
        }
        if (cur != a) continue;
        atomic_fetch_add_explicit(&e->n[tid < THREADS ? tid : THREADS - 1], 1,
                                  memory_order_relaxed);
        int zero = 0;
        if (atomic_compare_exchange_strong(&e->nbt, &zero, -1))
            atomic_store(&e->nbt, backtrace(e->bt, FRAMES));
        inside = 0;
        return;
    }
    atomic_fetch_add(&overflow, 1);
    inside = 0;
}

/* Resolved on first use too: other libraries' constructors may lock before ours runs. */
int pthread_mutex_lock(pthread_mutex_t* m) {
    if (!real_mutex_lock) real_mutex_lock = dlsym(RTLD_NEXT, "pthread_mutex_lock");
    note(m, 'm');
    return real_mutex_lock(m);
}
int pthread_rwlock_rdlock(pthread_rwlock_t* l) {
    if (!real_rdlock) real_rdlock = dlsym(RTLD_NEXT, "pthread_rwlock_rdlock");
    note(l, 'r');
    return real_rdlock(l);
}
int pthread_rwlock_wrlock(pthread_rwlock_t* l) {
    if (!real_wrlock) real_wrlock = dlsym(RTLD_NEXT, "pthread_rwlock_wrlock");
    note(l, 'w');
    return real_wrlock(l);
}

/* The lock's user: the first frame outside libc, libpthread, this library and OpenSSL's lock
 * wrappers, then the next two frames that have a dynamic symbol (libcrypto's static functions
 * have none), e.g. "libcrypto.so.3!?+0x22edd7 < EVP_MD_fetch < ssl_load_ciphers". */
static void caller(struct entry* e, char* out, size_t len) {
    size_t used = 0;
    int named = 0;
    snprintf(out, len, "?");
    for (int i = 0; i < e->nbt && named < 2 && used < len; i++) {
        Dl_info d;
        if (!dladdr(e->bt[i], &d) || !d.dli_fname) continue;
        const char* lib = strrchr(d.dli_fname, '/') ? strrchr(d.dli_fname, '/') + 1 : d.dli_fname;
        if (!strncmp(lib, "libc.", 5) || !strncmp(lib, "libpthread", 10) ||
            strstr(lib, "lockcount"))
            continue;
        if (d.dli_sname && (!strncmp(d.dli_sname, "CRYPTO_THREAD_", 14) ||
                            !strcmp(d.dli_sname, "CRYPTO_atomic_add")))
            continue;
        if (used == 0) {
            used +=
                (size_t)snprintf(out, len, "%s!%s+0x%lx", lib, d.dli_sname ? d.dli_sname : "?",
                                 (unsigned long)((char*)e->bt[i] -
                                                 (char*)(d.dli_sname ? d.dli_saddr : d.dli_fbase)));
            if (d.dli_sname) named++;
        } else if (d.dli_sname) {
            used += (size_t)snprintf(out + used, len - used, "<%s", d.dli_sname);
            named++;
        }
    }
}

static int by_total(const void* x, const void* y) {
    unsigned long a = 0, b = 0;
    for (int t = 0; t < THREADS; t++)
        a += (*(struct entry* const*)x)->n[t], b += (*(struct entry* const*)y)->n[t];
    return a < b ? 1 : a > b ? -1 : 0;
}

static void dump(void) {
    const char* path = getenv("LOCKCOUNT_OUT");
    FILE* f = path ? fopen(path, "a") : stderr;
    if (!f) return;
    static struct entry* used[SLOTS];
    size_t k = 0;
    for (size_t i = 0; i < SLOTS; i++)
        if (atomic_load(&tab[i].addr)) used[k++] = &tab[i];
    qsort(used, k, sizeof *used, by_total);
    fprintf(f, "# lockcount: %zu locks, %d threads, %d acquisitions not recorded (table full)\n", k,
            atomic_load(&next_tid), atomic_load(&overflow));
    fprintf(f, "# total kind threads_using per_thread caller\n");
    for (size_t i = 0; i < k; i++) {
        unsigned long total = 0;
        int users = 0;
        char per[256] = "", *p = per, who[512];
        for (int t = 0; t < THREADS; t++) {
            unsigned long n = used[i]->n[t];
            if (!n) continue;
            total += n, users++;
            p +=
                snprintf(p, (size_t)(per + sizeof per - p), "%st%d:%lu", p == per ? "" : ",", t, n);
        }
        caller(used[i], who, sizeof who);
        fprintf(f, "%lu %c %d %s %s\n", total, used[i]->kind, users, per, who);
    }
    if (f != stderr) fclose(f);
}

/* Watches LOCKCOUNT_ARM: counting while the file exists, the table once it is gone. */
static void* watch(void* arg) {
    const char* arm = arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    while (access(arm, F_OK) != 0) nanosleep(&ts, NULL);
    atomic_store(&armed, 1);
    while (access(arm, F_OK) == 0) nanosleep(&ts, NULL);
    atomic_store(&armed, 0);
    dump();
    return NULL;
}

__attribute__((constructor)) static void init(void) {
    real_mutex_lock = dlsym(RTLD_NEXT, "pthread_mutex_lock");
    real_rdlock = dlsym(RTLD_NEXT, "pthread_rwlock_rdlock");
    real_wrlock = dlsym(RTLD_NEXT, "pthread_rwlock_wrlock");
    void* b[2];
    backtrace(b, 2); /* loads the unwinder now, not inside a lock */
    const char* arm = getenv("LOCKCOUNT_ARM");
    pthread_t t;
    if (arm && pthread_create(&t, NULL, watch, (void*)arm) == 0) pthread_detach(t);
}
