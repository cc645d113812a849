/* A workload of known instruction count, for comparing maple_edge_lite.device.counters with `perf stat`
 * (tools/aarch64/perf_compare.sh; tests/test_counters_perf_stat.py embeds the same program).
 *
 *   perf_workload N      runs a loop of exactly 2*N instructions (N >= 1), then exits
 *
 * The loop is two instructions per iteration in inline assembly, so the compiler cannot change
 * it: `subs x, x, #1; b.ne 1b` on aarch64, `dec; jnz` on x86_64. Everything else the process
 * executes (C start-up, argument parsing, exit) is a small fixed amount that does not depend on
 * N, so counts at two values of N differ by exactly 2*(N2 - N1) instructions.
 * Build: aarch64-linux-gnu-gcc -O1 -static -o perf_workload perf_workload.c (or cc -O1 natively).
 */
#include <stdlib.h>

static void spin(unsigned long n) {
#if defined(__aarch64__)
    __asm__ volatile("1: subs %0, %0, #1\n\tb.ne 1b" : "+r"(n) : : "cc");
#elif defined(__x86_64__)
    __asm__ volatile("1: dec %0\n\tjnz 1b" : "+r"(n) : : "cc");
#else
#error "perf_workload.c: only aarch64 and x86_64 have the two-instruction loop"
#endif
}

int main(int argc, char **argv) {
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000000ul;
    if (n > 0) spin(n);
    return 0;
}
